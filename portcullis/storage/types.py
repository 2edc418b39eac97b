"""The upload allow-list: image and audio only; never SVG or HTML.

For each extension, the declared types a client may send and the types libmagic may sniff.
All three must agree on one entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaType:
    canonical: str
    kind: str  # "image" or "audio"
    decoder: str  # Pillow format name or mutagen kind
    declared: frozenset[str]
    sniffed: frozenset[str]


def _t(canonical: str, kind: str, decoder: str, declared: set[str],
       sniffed: set[str]) -> MediaType:
    return MediaType(canonical, kind, decoder, frozenset(declared | {canonical}),
                     frozenset(sniffed | {canonical}))


PNG = _t("image/png", "image", "PNG", set(), set())
JPEG = _t("image/jpeg", "image", "JPEG", {"image/jpg", "image/pjpeg"}, set())
GIF = _t("image/gif", "image", "GIF", set(), set())
WEBP = _t("image/webp", "image", "WEBP", set(), set())
MP3 = _t("audio/mpeg", "audio", "mp3", {"audio/mp3", "audio/mpeg3"}, set())
WAV = _t("audio/wav", "audio", "wave", {"audio/x-wav", "audio/wave", "audio/vnd.wave"},
         {"audio/x-wav", "audio/wave", "audio/vnd.wave"})
OGG = _t("audio/ogg", "audio", "ogg", {"application/ogg", "audio/vorbis", "audio/opus"},
         {"application/ogg"})
FLAC = _t("audio/flac", "audio", "flac", {"audio/x-flac"}, {"audio/x-flac"})
M4A = _t("audio/mp4", "audio", "mp4", {"audio/x-m4a", "audio/m4a", "audio/aac"},
         {"audio/x-m4a", "video/mp4", "audio/m4a"})

BY_EXTENSION: dict[str, MediaType] = {
    ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".gif": GIF, ".webp": WEBP, ".mp3": MP3,
    ".wav": WAV, ".ogg": OGG, ".oga": OGG, ".flac": FLAC, ".m4a": M4A,
}
DECLARABLE = frozenset().union(*(t.declared for t in BY_EXTENSION.values()))


def extension_of(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


def accepted_at_intake(filename: str, declared: str) -> MediaType | None:
    """The entry a (filename, declared type) pair names, or None → 415 at once."""
    media = BY_EXTENSION.get(extension_of(filename))
    declared = declared.split(";")[0].strip().lower()
    if media is None or declared not in DECLARABLE:
        return None
    return media


def agrees(filename: str, declared: str, sniffed: str) -> MediaType | None:
    media = BY_EXTENSION.get(extension_of(filename))
    declared = declared.split(";")[0].strip().lower()
    if media is None or declared not in media.declared or sniffed not in media.sniffed:
        return None
    return media
