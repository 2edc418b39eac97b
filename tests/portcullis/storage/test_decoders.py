"""The decoders' end-of-file rules for WebP and audio, with the real decoders (Pillow,
mutagen): a clean file passes, common real-world variations pass, and a file with anything
outside its container's structure (HTML and a ZIP appended, a RIFF size that lies) is
refused. No services needed."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from portcullis.storage import decoders, types
from portcullis.storage.types import MediaType
from tests.support import media


def _check(tmp_path: Path, data: bytes, kind: MediaType) -> None:
    path = tmp_path / "content"
    path.write_bytes(data)
    decoders.check(path, kind)


def _refused(tmp_path: Path, data: bytes, kind: MediaType) -> str:
    """Refused by check(), and by the structure walk itself, not only by a decoder that
    happens to mind (libwebp checks the RIFF size, mutagen some box sizes)."""
    with pytest.raises(decoders.Undecodable) as refused:
        _check(tmp_path, data, kind)
    assert decoders._END_OF[kind.decoder](data) != len(data)
    return str(refused.value)


def _webp_lossless_odd_chunk() -> bytes:
    """libwebp writes a 17-byte VP8L chunk for this 1x1 image, then its pad byte."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (7, 40, 90)).save(buffer, "WEBP", lossless=True)
    data = buffer.getvalue()
    assert int.from_bytes(data[16:20], "little") % 2 == 1
    return data


def _webp_with_alpha() -> bytes:
    """An extended WebP (VP8X, ALPH and VP8 chunks)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (1, 2, 3, 100)).save(buffer, "WEBP")
    assert buffer.getvalue()[12:16] == b"VP8X"
    return buffer.getvalue()


CLEAN: dict[str, tuple[Callable[[], bytes], MediaType]] = {
    "webp": (media.webp, types.WEBP),
    "wav": (media.wav, types.WAV),
    "flac": (lambda: media.fixture("clean.flac"), types.FLAC),
    "ogg": (lambda: media.fixture("clean.ogg"), types.OGG),
    "mp3": (lambda: media.fixture("clean.mp3"), types.MP3),
    "m4a": (lambda: media.fixture("clean.m4a"), types.M4A),
}


@pytest.mark.parametrize("family", list(CLEAN))
def test_clean_sample_passes(tmp_path: Path, family: str) -> None:
    make, kind = CLEAN[family]
    _check(tmp_path, make(), kind)


@pytest.mark.parametrize("family", list(CLEAN))
def test_html_and_zip_appended_is_refused(tmp_path: Path, family: str) -> None:
    make, kind = CLEAN[family]
    reason = _refused(tmp_path, media.with_html_and_zip(make()), kind)
    assert reason.startswith("data after the end")


@pytest.mark.parametrize("family", list(CLEAN))
def test_html_alone_appended_is_refused(tmp_path: Path, family: str) -> None:
    make, kind = CLEAN[family]
    _refused(tmp_path, make() + media.HTML, kind)


@pytest.mark.parametrize("family", list(CLEAN))
def test_one_stray_byte_is_refused(tmp_path: Path, family: str) -> None:
    make, kind = CLEAN[family]
    _refused(tmp_path, make() + b"\x01", kind)


# -- RIFF (WebP, WAV) ------------------------------------------------------------------------

@pytest.mark.parametrize("variation", [_webp_lossless_odd_chunk, _webp_with_alpha])
def test_webp_variations_pass(tmp_path: Path, variation: Callable[[], bytes]) -> None:
    _check(tmp_path, variation(), types.WEBP)


@pytest.mark.parametrize("variation", [
    media.wav_with_odd_chunk,  # odd LIST chunk, then its pad byte
    media.wav_odd_data,  # the last chunk is odd and its pad byte left out
    lambda: media.wav_odd_data() + b"\x00",  # ... or present after an odd RIFF size
], ids=["odd-chunk-padded", "odd-last-chunk-unpadded", "odd-riff-size-padded"])
def test_wav_variations_pass(tmp_path: Path, variation: Callable[[], bytes]) -> None:
    _check(tmp_path, variation(), types.WAV)


@pytest.mark.parametrize("delta", [-2, -1, 1, 2, 64])
@pytest.mark.parametrize("family", ["webp", "wav"])
def test_riff_size_other_than_the_file_is_refused(tmp_path: Path, family: str,
                                                  delta: int) -> None:
    make, kind = CLEAN[family]
    _refused(tmp_path, media.riff_size_off(make(), delta), kind)


@pytest.mark.parametrize("family", ["webp", "wav"])
def test_riff_size_covering_an_appended_payload_is_refused(tmp_path: Path,
                                                           family: str) -> None:
    """The RIFF size made to cover the appended bytes: they are no chunk, so the walk
    fails."""
    make, kind = CLEAN[family]
    payload = media.HTML + media.zip_archive()
    _refused(tmp_path, media.riff_size_off(make() + payload, len(payload)), kind)


@pytest.mark.parametrize("extra", [b"", b"\x00\x00"], ids=["at-file-end", "past-riff-size"])
def test_wav_chunk_running_past_the_riff_size_is_refused(tmp_path: Path, extra: bytes) -> None:
    data = media.wav()
    data_chunk = data.index(b"data")
    grown = int.from_bytes(data[data_chunk + 4:data_chunk + 8], "little") + 2
    lying = data[:data_chunk + 4] + struct.pack("<I", grown) + data[data_chunk + 8:]
    _refused(tmp_path, lying + extra, types.WAV)


def test_wav_pad_byte_after_an_even_riff_size_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, media.wav() + b"\x00", types.WAV)


# -- FLAC ------------------------------------------------------------------------------------

def test_flac_trailer_with_a_fixed_up_crc_is_refused(tmp_path: Path) -> None:
    """The last frame is decoded to its exact end: a CRC-16 kept valid is not enough."""
    _refused(tmp_path, media.flac_with_crc_fixed_trailer(), types.FLAC)


def test_flac_truncated_last_frame_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, media.fixture("clean.flac")[:-3], types.FLAC)


def test_flac_id3v1_tag_is_refused(tmp_path: Path) -> None:
    """FLAC has its own tags (Vorbis comments): an ID3v1 trailer is not part of it."""
    _refused(tmp_path, media.fixture("clean.flac") + media.id3v1(), types.FLAC)


# -- Ogg -------------------------------------------------------------------------------------

def _ogg_pages(data: bytes) -> list[bytes]:
    pages, pos = [], 0
    while pos < len(data):
        count = data[pos + 26]
        end = pos + 27 + count + sum(data[pos + 27:pos + 27 + count])
        pages.append(data[pos:end])
        pos = end
    return pages


def _with_crc(page: bytes) -> bytes:
    """The page with its CRC recomputed by a plain bitwise Ogg CRC-32."""
    body = page[:22] + b"\x00\x00\x00\x00" + page[26:]
    crc = 0
    for byte in body:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 \
                else (crc << 1) & 0xFFFFFFFF
    return body[:22] + struct.pack("<I", crc) + body[26:]


def test_ogg_last_page_without_end_of_stream_is_refused(tmp_path: Path) -> None:
    pages = _ogg_pages(media.fixture("clean.ogg"))
    last = bytearray(pages[-1])
    assert last[5] & 0x04
    last[5] &= ~0x04
    _refused(tmp_path, b"".join(pages[:-1]) + _with_crc(bytes(last)), types.OGG)


def test_ogg_page_with_a_bad_crc_is_refused(tmp_path: Path) -> None:
    pages = _ogg_pages(media.fixture("clean.ogg"))
    middle = bytearray(pages[1])
    middle[-1] ^= 0x01
    _refused(tmp_path, b"".join([pages[0], bytes(middle), *pages[2:]]), types.OGG)


def test_ogg_crc_matches_a_plain_implementation() -> None:
    for page in _ogg_pages(media.fixture("clean.ogg")):
        assert _with_crc(page) == page


# -- MP3 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("tail", [media.id3v1(), media.apev2(), media.apev2() + media.id3v1()],
                         ids=["id3v1", "apev2", "apev2-then-id3v1"])
def test_mp3_with_trailing_tags_passes(tmp_path: Path, tail: bytes) -> None:
    _check(tmp_path, media.fixture("clean.mp3") + tail, types.MP3)


@pytest.mark.parametrize("data", [
    media.fixture("clean.mp3") + media.id3v1() + media.HTML,
    media.fixture("clean.mp3") + media.HTML + media.id3v1(),
    media.fixture("clean.mp3") + media.apev2()[:-1],
    media.fixture("clean.mp3")[:-10],
], ids=["html-after-id3v1", "html-before-id3v1", "broken-apev2", "truncated-last-frame"])
def test_mp3_other_trailers_are_refused(tmp_path: Path, data: bytes) -> None:
    _refused(tmp_path, data, types.MP3)


def test_mp3_html_before_the_first_frame_is_refused(tmp_path: Path) -> None:
    data = media.fixture("clean.mp3")
    tag_end = 10 + data[9]  # the fixture's ID3v2 tag is under 128 bytes
    _refused(tmp_path, data[:tag_end] + media.HTML + data[tag_end:], types.MP3)


# -- M4A -------------------------------------------------------------------------------------

def _replace_free_box(data: bytes, box: bytes) -> bytes:
    at = data.index(b"\x00\x00\x00\x08free")
    return data[:at] + box + data[at + 8:]


def test_m4a_64_bit_box_size_passes(tmp_path: Path) -> None:
    large = struct.pack(">I4sQ", 1, b"free", 16)
    _check(tmp_path, _replace_free_box(media.fixture("clean.m4a"), large), types.M4A)


@pytest.mark.parametrize("box", [
    struct.pack(">I4s", 0, b"free"),  # size 0: "to the end of the file"
    struct.pack(">I4s", 4, b"free"),  # smaller than its own header
    struct.pack(">I4sQ", 1, b"free", 8),  # 64-bit size smaller than its header
], ids=["size-zero", "size-below-header", "large-size-below-header"])
def test_m4a_invalid_box_size_is_refused(tmp_path: Path, box: bytes) -> None:
    _refused(tmp_path, _replace_free_box(media.fixture("clean.m4a"), box), types.M4A)


def test_m4a_last_box_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    data = media.fixture("clean.m4a")
    moov = data.rindex(b"moov") - 4
    size = int.from_bytes(data[moov:moov + 4], "big")
    lying = data[:moov] + struct.pack(">I", size + 100) + data[moov + 4:]
    _refused(tmp_path, lying, types.M4A)
