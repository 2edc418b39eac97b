"""Decode a file for real, so truncated files, bombs and polyglots are refused.

Images: Pillow opens, verifies and fully loads the pixels under a pixel limit (a
decompression bomb is an error, not a warning). Audio: mutagen must parse the container
and find a positive duration. Then the file must end exactly where its format ends, as
found by walking the container's own structure (nothing appended: the usual polyglot
trick, e.g. HTML and a ZIP after a valid file):

- PNG chunks to IEND; GIF blocks to the trailer; JPEG ends with EOI (NUL padding allowed).
- WebP and WAV (RIFF): the RIFF size + 8 is the file length (one zero pad byte allowed
  after an odd size); every chunk lies inside the RIFF size and the last one ends it.
- FLAC: metadata blocks (STREAMINFO first) to the last-block flag, then frames found by
  their headers (sync, CRC-8, consecutive frame or sample numbers) up to STREAMINFO's
  sample count; the last frame is decoded bit by bit (subframes, residual) and its CRC-16
  checked, and the file must end there.
- Ogg: every byte belongs to a page (capture pattern, version 0, CRC-32), the first page
  begins a stream and the last one ends it (end-of-stream flag).
- MP3: ID3v2 tags (their declared sizes, then NUL padding), MPEG frames walked by their
  header's length to the end, then at most an APEv2 tag and an ID3v1 tag. Free-format
  bitrates, a truncated last frame and other trailers (Lyrics3) are refused.
- M4A: top-level MP4 boxes walked by size (64-bit sizes too) to the exact end of file;
  a size-0 box ("to the end of the file") is refused.

Bytes that a format itself carries (a PNG text chunk, an MP4 ``free`` box, a tag) are out
of reach of this check: only what lies outside the format's structure is refused.
"""

from __future__ import annotations

import warnings
import zlib
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
    """The file's length if it ends with EOI (trailing NUL padding allowed), else None."""
    return len(data) if data.rstrip(b"\x00").endswith(b"\xff\xd9") else None


def _riff_end(data: bytes, form: bytes) -> int | None:
    """Where a RIFF file of this form ends, walking its chunks inside the declared size.

    The RIFF chunk is a chunk too: an odd size is followed by one zero pad byte, which a
    writer may leave out. Inner chunks are padded to even sizes, except that the last
    one's pad byte may fall outside the RIFF size (it is then the RIFF chunk's own pad).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != form:
        return None
    size = int.from_bytes(data[4:8], "little")
    declared = 8 + size
    if declared > len(data):
        return None
    pos = 12
    while pos < declared:
        if pos + 8 > declared:
            return None  # a partial chunk header
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        end = pos + 8 + length
        if end > declared:
            return None  # the chunk runs past the RIFF size
        pos = min(end + (length & 1), declared)
    if size & 1 and len(data) == declared + 1 and data[declared] == 0:
        return declared + 1
    return declared


def _webp_end(data: bytes) -> int | None:
    return _riff_end(data, b"WEBP")


def _wav_end(data: bytes) -> int | None:
    return _riff_end(data, b"WAVE")


# -- FLAC ------------------------------------------------------------------------------------

class _Truncated(Exception):
    """The bit reader ran past the end of the data."""


class _Bits:
    """A big-endian bit reader over bytes, enough to skip FLAC subframes exactly."""

    def __init__(self, data: bytes, byte_pos: int) -> None:
        self.data, self.pos, self.limit = data, byte_pos * 8, len(data) * 8

    def read(self, count: int) -> int:
        if count == 0:
            return 0
        end = self.pos + count
        if end > self.limit:
            raise _Truncated
        first, last = self.pos >> 3, (end + 7) >> 3
        value = int.from_bytes(self.data[first:last], "big") >> ((last << 3) - end)
        self.pos = end
        return value & ((1 << count) - 1)

    def skip(self, count: int) -> None:
        self.pos += count
        if self.pos > self.limit:
            raise _Truncated

    def unary(self) -> int:
        """The number of 0 bits before the next 1 bit (which is consumed)."""
        index, bit = self.pos >> 3, self.pos & 7
        if index >= len(self.data):
            raise _Truncated
        zeros = -bit
        current = self.data[index] & (0xFF >> bit)
        while current == 0:
            zeros += 8
            index += 1
            if index >= len(self.data):
                raise _Truncated
            current = self.data[index]
        lead = 8 - current.bit_length()
        self.pos = index * 8 + lead + 1
        return zeros + lead


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask, table = 1 << (width - 1), (1 << width) - 1, []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


class _FlacFrame:
    """The fields of a FLAC frame header that the walk needs."""

    __slots__ = ("assignment", "bits", "block", "length", "number")

    def __init__(self, number: int, block: int, assignment: int, bits: int,
                 length: int) -> None:
        self.number, self.block, self.assignment = number, block, assignment
        self.bits, self.length = bits, length


_FLAC_SAMPLE_BITS = {1: 8, 2: 12, 4: 16, 5: 20, 6: 24, 7: 32}


def _flac_frame(data: bytes, pos: int, stream_bits: int) -> _FlacFrame | None:
    """The frame header at pos (sync code, reserved bits, coded number, CRC-8), or None."""
    if pos + 6 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xFE != 0xF8:
        return None
    block_code, rate_code = data[pos + 2] >> 4, data[pos + 2] & 15
    assignment, size_code = data[pos + 3] >> 4, (data[pos + 3] >> 1) & 7
    if not block_code or rate_code == 15 or assignment > 10 or size_code == 3 \
            or data[pos + 3] & 1:
        return None
    lead, p = data[pos + 4], pos + 5
    extra = 0 if lead < 0x80 else 8 - (~lead & 0xFF).bit_length() - 1
    if (lead >= 0x80 and not 1 <= extra <= 6) or p + extra + 4 > len(data):
        return None  # 10xxxxxx or 0xFF cannot start a coded number
    number = lead & ((1 << (6 - extra)) - 1) if extra else lead
    for byte in data[p:p + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    p += extra
    if block_code == 6:
        block, p = data[p] + 1, p + 1
    elif block_code == 7:
        block, p = int.from_bytes(data[p:p + 2], "big") + 1, p + 2
    elif block_code == 1:
        block = 192
    else:
        block = 576 << (block_code - 2) if block_code < 8 else 256 << (block_code - 8)
    p += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if p >= len(data) or _crc8(data[pos:p]) != data[p]:
        return None
    bits = stream_bits if size_code == 0 else _FLAC_SAMPLE_BITS[size_code]
    return _FlacFrame(number, block, assignment, bits, p + 1 - pos)


def _flac_residual(bits: _Bits, block: int, order: int) -> None:
    method = bits.read(2)
    if method > 1:
        raise _Truncated  # reserved coding method
    param_bits = 4 + method
    escape = (1 << param_bits) - 1
    partition_order = bits.read(4)
    per_partition = block >> partition_order
    if per_partition << partition_order != block or per_partition < order:
        raise _Truncated
    for partition in range(1 << partition_order):
        count = per_partition - (order if partition == 0 else 0)
        param = bits.read(param_bits)
        if param == escape:
            bits.skip(bits.read(5) * count)
        else:
            for _ in range(count):
                bits.unary()
                bits.skip(param)


def _flac_frame_end(data: bytes, pos: int, frame: _FlacFrame) -> int | None:
    """Offset just past the frame at pos (after its CRC-16), decoding every subframe."""
    bits = _Bits(data, pos + frame.length)
    channels = frame.assignment + 1 if frame.assignment < 8 else 2
    side = {8: 1, 9: 0, 10: 1}.get(frame.assignment, -1)
    try:
        for channel in range(channels):
            size = frame.bits + (channel == side)
            if bits.read(1):
                return None  # the zero bit that starts a subframe
            kind = bits.read(6)
            if bits.read(1):
                size -= bits.unary() + 1  # wasted bits per sample
            if size <= 0:
                return None
            if kind == 0:
                bits.skip(size)  # CONSTANT
            elif kind == 1:
                bits.skip(size * frame.block)  # VERBATIM
            elif 8 <= kind <= 12:
                bits.skip(size * (kind - 8))  # FIXED: warm-up samples
                _flac_residual(bits, frame.block, kind - 8)
            elif kind >= 32:
                order = kind - 31  # LPC
                bits.skip(size * order)
                precision = bits.read(4) + 1
                if precision == 16:
                    return None
                bits.skip(5 + precision * order)  # shift, coefficients
                _flac_residual(bits, frame.block, order)
            else:
                return None  # reserved subframe type
    except _Truncated:
        return None
    end = (bits.pos + 7) // 8 + 2
    if end > len(data) or _crc16(data[pos:end - 2]) != int.from_bytes(data[end - 2:end], "big"):
        return None
    return end


def _flac_end(data: bytes) -> int | None:
    """Offset just past the last FLAC frame, walking the metadata blocks then the frames."""
    if data[:4] != b"fLaC":
        return None
    pos, first = 4, True
    while True:
        if pos + 4 > len(data):
            return None
        header, length = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        if (header & 0x7F) == 127 or (first and (header & 0x7F != 0 or length != 34)):
            return None
        pos, first = pos + 4 + length, False
        if pos > len(data):
            return None
        if header & 0x80:
            break
    info = int.from_bytes(data[8:42], "big")
    stream_bits = ((info >> 164) & 0x1F) + 1
    total = (info >> 128) & 0xFFFFFFFFF  # 0: not known
    frame = _flac_frame(data, pos, stream_bits)
    if frame is None or frame.number != 0:
        return None
    sync, variable, samples = data[pos:pos + 2], data[pos + 1] & 1, 0
    while True:
        samples += frame.block
        if total and samples >= total:
            break  # the last frame by STREAMINFO's count
        expected = samples if variable else frame.number + 1
        search, following = pos + frame.length, None
        while following is None:
            search = data.find(sync, search + 1)
            if search < 0:
                break
            candidate = _flac_frame(data, search, stream_bits)
            if candidate is not None and candidate.number == expected:
                following = candidate
        if following is None:
            if total:
                return None  # fewer samples than STREAMINFO says
            break
        pos, frame = search, following
    return _flac_frame_end(data, pos, frame)


# -- Ogg -------------------------------------------------------------------------------------

_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, no init or final XOR), computed
    with zlib's reflected CRC-32 on bit-reversed bytes so it runs at C speed."""
    crc = zlib.crc32(page.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{crc:032b}"[::-1], 2)


def _ogg_end(data: bytes) -> int | None:
    """Offset just past the last Ogg page, if every page is sound and the last ends a
    stream."""
    pos, flags = 0, 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data) or data[pos + 4] != 0:
            return None
        flags, segments = data[pos + 5], data[pos + 26]
        body = pos + 27 + segments
        end = body + sum(data[pos + 27:body])
        if flags & 0xF8 or end > len(data) or (pos == 0 and not flags & 0x02):
            return None
        page = data[pos:end]
        if _ogg_crc(page[:22] + b"\x00\x00\x00\x00" + page[26:]) != \
                int.from_bytes(page[22:26], "little"):
            return None
        pos = end
    return pos if flags & 0x04 else None


# -- MP3 -------------------------------------------------------------------------------------

_MPEG_KBPS = {
    (3, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (3, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (3, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


def _mpeg_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """(version, layer and sample-rate bits, frame length) of the MPEG audio frame at pos."""
    if pos + 4 > len(data):
        return None
    header = int.from_bytes(data[pos:pos + 4], "big")
    version, layer = (header >> 19) & 3, (header >> 17) & 3  # version 0 is MPEG 2.5
    rate_index, bitrate_index = (header >> 10) & 3, (header >> 12) & 15
    if header >> 21 != 0x7FF or version == 1 or not layer or rate_index == 3 \
            or bitrate_index in (0, 15):
        return None
    kbps = _MPEG_KBPS[(3 if version == 3 else 2, layer if version == 3 or layer == 3 else 2)]
    bitrate = kbps[bitrate_index - 1] * 1000
    rate = (44100, 48000, 32000)[rate_index] >> {3: 0, 2: 1, 0: 2}[version]
    padding = (header >> 9) & 1
    if layer == 3:  # Layer I
        length = (12 * bitrate // rate + padding) * 4
    else:
        length = (144 if version == 3 or layer == 2 else 72) * bitrate // rate + padding
    return (header >> 17 & 0xF) << 2 | rate_index, length


def _mp3_tail_is_tags(tail: bytes) -> bool:
    """Whether what follows the last frame is nothing, an APEv2 tag, an ID3v1 tag, or an
    APEv2 tag followed by an ID3v1 tag."""
    if len(tail) >= 128 and tail[-128:-125] == b"TAG":
        tail = tail[:-128]
    if len(tail) >= 32 and tail[-32:-24] == b"APETAGEX":
        size = int.from_bytes(tail[-20:-16], "little")
        has_header = int.from_bytes(tail[-12:-8], "little") & 0x80000000
        total = size + (32 if has_header else 0)
        if total == len(tail) and (not has_header or tail[:8] == b"APETAGEX"):
            tail = b""
    return not tail


def _mp3_end(data: bytes) -> int | None:
    """The file's length if, after the ID3v2 tags, it is MPEG frames to the end (then only
    tags), else None."""
    pos = 0
    while data[pos:pos + 3] == b"ID3" and pos + 10 <= len(data):
        size_bytes = data[pos + 6:pos + 10]
        if any(byte & 0x80 for byte in size_bytes):
            return None
        size = (size_bytes[0] << 21 | size_bytes[1] << 14 | size_bytes[2] << 7
                | size_bytes[3])  # syncsafe: 7 bits a byte
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)
        while pos < len(data) and data[pos] == 0:
            pos += 1  # padding past the tag's size, as some writers leave
    first, frames = None, 0
    while True:
        frame = _mpeg_frame(data, pos)
        if frame is None or pos + frame[1] > len(data) or first not in (None, frame[0]):
            break
        first, pos, frames = frame[0], pos + frame[1], frames + 1
    return len(data) if frames and _mp3_tail_is_tags(data[pos:]) else None


# -- MP4 -------------------------------------------------------------------------------------

def _mp4_end(data: bytes) -> int | None:
    """Offset just past the last top-level MP4 box, walking the boxes by size."""
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            return None
        size, kind, header = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8], 8
        if size == 1:
            if pos + 16 > len(data):
                return None
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if size < header or not all(0x20 <= byte < 0x7F for byte in kind):
            return None  # includes size 0, "to the end of the file"
        pos += size
    return pos if pos == len(data) else None


# Where each format really ends (keyed by Pillow format or mutagen kind); any byte after
# that is a smuggled payload (polyglots).
_END_OF = {"PNG": _png_end, "GIF": _gif_end, "JPEG": _jpeg_end, "WEBP": _webp_end,
           "wave": _wav_end, "flac": _flac_end, "ogg": _ogg_end, "mp3": _mp3_end,
           "mp4": _mp4_end}


def _check_end(path: Path, fmt: str, what: str) -> None:
    """The file must end exactly where its format's structure ends."""
    end_of = _END_OF.get(fmt)
    if end_of is None:
        return
    data = path.read_bytes()  # uploads are bounded by UPLOAD_MAX_BYTES
    if end_of(data) != len(data):
        raise Undecodable(f"data after the end of the {what}, or the {what} is cut short")


class Undecodable(Exception):
    """The content is not a sound file of its declared kind."""


def check(path: Path, media: MediaType) -> None:
    if media.kind == "image":
        _check_image(path, media.decoder)
    else:
        _check_audio(path, media.decoder)
    _check_end(path, media.decoder, media.kind)


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
