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

# The last bytes each format must end with; anything after them is a smuggled payload.
_ENDINGS = {"PNG": (b"IEND\xaeB`\x82",), "GIF": (b"\x3b",), "JPEG": (b"\xff\xd9",)}


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
    endings = _ENDINGS.get(fmt)
    if endings:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16))
            tail = handle.read().rstrip(b"\x00") if fmt == "JPEG" else handle.read()
        if not tail.endswith(endings):
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
