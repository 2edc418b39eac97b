"""Decode a file for real, so truncated files, bombs and polyglots are refused.

Images: Pillow opens, verifies and fully loads the pixels under a pixel limit (a
decompression bomb is an error, not a warning) and the file must end where the format
ends (nothing appended: the usual polyglot trick). Audio: mutagen must parse the container
and find a positive duration.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from portcullis.storage.types import MediaType

MAX_PIXELS = 40_000_000

def _png_end(data: bytes) -> int | None:
    """Offset just past the first IEND chunk, walking the chunk lengths."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    return None


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return len(data) + 1  # ran off the end: truncated


def _gif_end(data: bytes) -> int | None:
    """Offset just past the GIF trailer, walking the header, extensions and image blocks."""
    if len(data) < 13:
        return None
    pos = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:
            return pos + 1
        if block == 0x21:
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW minimum code size
        else:
            return None
    return None


def _jpeg_end(data: bytes) -> int | None:
    trimmed = data.rstrip(b"\x00")
    return len(trimmed) if trimmed.endswith(b"\xff\xd9") else None


# Where each format really ends; any byte after that is a smuggled payload (polyglots).
_END_OF = {"PNG": _png_end, "GIF": _gif_end, "JPEG": _jpeg_end}


class Undecodable(Exception):
    """The content is not a sound file of its declared kind."""


def check(path: Path, media: MediaType) -> None:
    if media.kind == "image":
        _check_image(path, media.decoder)
    else:
        _check_audio(path, media.decoder)


def _check_image(path: Path, fmt: str) -> None:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format != fmt:
                    raise Undecodable(f"decoded as {image.format}, not {fmt}")
                if image.width * image.height > MAX_PIXELS:
                    raise Undecodable("decompression bomb")
                image.verify()
            with Image.open(path) as image:
                image.load()
                for frame in range(1, min(getattr(image, "n_frames", 1), 500)):
                    image.seek(frame)
                    image.load()
    except Undecodable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Undecodable("decompression bomb") from exc
    except Exception as exc:
        raise Undecodable(type(exc).__name__) from exc
    end_of = _END_OF.get(fmt)
    if end_of is not None:
        data = path.read_bytes()  # uploads are bounded by UPLOAD_MAX_BYTES
        end = end_of(data)
        if end is None or end != len(data if fmt != "JPEG" else data.rstrip(b"\x00")):
            raise Undecodable("data after the end of the image")


def _check_audio(path: Path, kind: str) -> None:
    import mutagen
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.ogg import OggFileType
    from mutagen.wave import WAVE

    expected = {"mp3": MP3, "wave": WAVE, "ogg": OggFileType, "flac": FLAC, "mp4": MP4}[kind]
    try:
        parsed = mutagen.File(path)
    except Exception as exc:
        raise Undecodable(type(exc).__name__) from exc
    if parsed is None or not isinstance(parsed, expected):
        raise Undecodable(f"not a {kind} stream")
    length = getattr(parsed.info, "length", 0) or 0
    if length <= 0:
        raise Undecodable("no audio")
