"""Unit rules of the upload pipeline: filename sanitising, and the allow-list's intake and
agreement tables (no services needed)."""

from __future__ import annotations

import unicodedata

import pytest

from portcullis.storage import types
from portcullis.storage.filenames import MAX_LENGTH, sanitise

# -- sanitise --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("photo.png", "photo.png"),
    ("My Holiday 2024 (1).jpg", "My Holiday 2024 (1).jpg"),
    ("../../../etc/passwd", "passwd"),
    ("../../etc/cron.d/x.png", "x.png"),
    ("..\\..\\Windows\\System32\\boot.png", "boot.png"),
    ("/absolute/path.png", "path.png"),
    ("C:\\Users\\me\\photo.png", "photo.png"),
    ("dir/", "upload"),
    ("..", "upload"),
    ("nul\x00byte.png", "nulbyte.png"),
    ("\x00", "upload"),
    ("crlf\r\nSet-Cookie: x.png", "crlfSet-Cookie: x.png"),
    ("tab\there.png", "tabhere.png"),
    ("del\x7f.png", "del.png"),
    ("esc\x1b[31mred.png", "esc[31mred.png"),
    ("c1\x85\x9bnext.png", "c1next.png"),
    ("invoice\u202egnp.exe.png", "invoicegnp.exe.png"),  # right-to-left override
    ("\u202a\u202b\u202c\u202d\u202eall.png", "all.png"),  # embeddings and overrides
    ("\u2066\u2067\u2068iso\u2069.png", "iso.png"),  # isolates
    ("\u200e\u200fmarks.png", "marks.png"),  # LRM, RLM
    ("zero\u200bwidth\ufeff.png", "zerowidth.png"),  # ZWSP, BOM
    ("line\u2028para\u2029.png", "linepara.png"),  # separators
    (".hidden.png", "hidden.png"),
    ("...dots.png", "dots.png"),
    ("  spaced.png  ", "spaced.png"),
    ("...", "upload"),
    (None, "upload"),
    ("", "upload"),
    ("cafe\u0301.png", "caf\u00e9.png"),  # NFC
    ("日本語のファイル.png", "日本語のファイル.png"),
])
def test_sanitise(raw: str | None, expected: str) -> None:
    assert sanitise(raw) == expected


@pytest.mark.parametrize("raw", [
    "../x.png", "a\x00b.png", "a\r\nb.png", "\u202ex.png", " . .png", ". . . x.png",
    ".\u202e.png", "\u200b.hidden.png", "\x00..\x00.png",
])
def test_sanitised_names_have_no_path_control_format_or_leading_dot(raw: str) -> None:
    name = sanitise(raw)
    assert name and "/" not in name and "\\" not in name
    assert not name.startswith("."), name
    assert name == name.strip()
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp"} for c in name)


def test_overlong_names_are_cut_keeping_the_extension() -> None:
    long_png = sanitise("a" * 400 + ".png")
    assert len(long_png) == MAX_LENGTH == 255
    assert long_png.endswith(".png") and long_png.startswith("aaa")
    wide = sanitise("é" * 300 + ".jpeg")
    assert len(wide) == MAX_LENGTH and wide.endswith(".jpeg")
    no_ext = sanitise("b" * 300)
    assert no_ext == "b" * MAX_LENGTH
    odd_ext = sanitise("c" * 300 + "." + "d" * 20)  # not a real extension: just cut
    assert len(odd_ext) == MAX_LENGTH and odd_ext.startswith("ccc")
    exact = "e" * (MAX_LENGTH - 4) + ".png"
    assert sanitise(exact) == exact
    # controls removed before measuring
    assert sanitise("\x00" * 100 + "f" * 251 + ".png") == "f" * 251 + ".png"


def test_sanitise_is_idempotent() -> None:
    for raw in ("../a\u202e.png", " . .x.png", "x" * 300 + ".png", "c\r\n.png", "é" * 260):
        once = sanitise(raw)
        assert sanitise(once) == once


# -- the allow-list --------------------------------------------------------------------------

def test_allow_list_is_image_and_audio_only() -> None:
    assert set(types.BY_EXTENSION) == {".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp3",
                                       ".wav", ".ogg", ".oga", ".flac", ".m4a"}
    for media in types.BY_EXTENSION.values():
        assert media.kind in {"image", "audio"}
        assert media.canonical.split("/")[0] == media.kind
        for mime in media.declared | media.sniffed:
            assert not any(bad in mime for bad in ("svg", "html", "xml", "javascript",
                                                   "text/", "octet-stream")), mime
    assert not any(bad in mime for mime in types.DECLARABLE
                   for bad in ("svg", "html", "xml", "javascript", "text/"))


@pytest.mark.parametrize(("filename", "declared", "expected"), [
    ("a.png", "image/png", types.PNG),
    ("A.PNG", "IMAGE/PNG", types.PNG),
    ("a.png", "image/png; charset=binary", types.PNG),
    ("a.jpg", "image/jpeg", types.JPEG),
    ("a.jpeg", "image/pjpeg", types.JPEG),
    ("a.gif", "image/gif", types.GIF),
    ("a.webp", "image/webp", types.WEBP),
    ("a.mp3", "audio/mpeg", types.MP3),
    ("a.wav", "audio/x-wav", types.WAV),
    ("a.ogg", "application/ogg", types.OGG),
    ("a.oga", "audio/ogg", types.OGG),
    ("a.flac", "audio/x-flac", types.FLAC),
    ("a.m4a", "audio/x-m4a", types.M4A),
    # both inside the allow-list: accepted now, the worker judges the disagreement
    ("track.mp3", "image/png", types.MP3),
    ("a.exe.png", "image/png", types.PNG),
    # refused at once
    ("a.svg", "image/svg+xml", None),
    ("a.png", "image/svg+xml", None),
    ("a.svg", "image/png", None),
    ("a.html", "text/html", None),
    ("a.png", "text/html", None),
    ("a.htm", "image/png", None),
    ("a.png", "application/octet-stream", None),
    ("a.png", "", None),
    ("a.png.exe", "image/png", None),
    ("a.tiff", "image/tiff", None),
    ("a.bmp", "image/bmp", None),
    ("a.mp4", "video/mp4", None),
    ("png", "image/png", None),
    (".png", "image/png", None),
    ("upload", "image/png", None),
])
def test_accepted_at_intake(filename: str, declared: str,
                            expected: types.MediaType | None) -> None:
    assert types.accepted_at_intake(filename, declared) is expected


@pytest.mark.parametrize(("filename", "declared", "sniffed", "expected"), [
    ("a.png", "image/png", "image/png", types.PNG),
    ("a.jpg", "image/jpg", "image/jpeg", types.JPEG),
    ("a.gif", "image/gif", "image/gif", types.GIF),
    ("a.webp", "image/webp", "image/webp", types.WEBP),
    ("a.mp3", "audio/mp3", "audio/mpeg", types.MP3),
    ("a.wav", "audio/wav", "audio/x-wav", types.WAV),
    ("a.ogg", "audio/ogg", "audio/ogg", types.OGG),
    ("a.ogg", "audio/opus", "application/ogg", types.OGG),
    ("a.flac", "audio/flac", "audio/x-flac", types.FLAC),
    ("a.m4a", "audio/mp4", "audio/x-m4a", types.M4A),
    ("a.m4a", "audio/aac", "video/mp4", types.M4A),
    ("A.PNG", "Image/PNG", "image/png", types.PNG),
    # sniffed disagrees
    ("a.png", "image/png", "text/html", None),
    ("a.png", "image/png", "image/svg+xml", None),
    ("a.png", "image/png", "image/jpeg", None),
    ("a.gif", "image/gif", "image/png", None),
    ("a.mp3", "audio/mpeg", "image/png", None),
    ("a.mp3", "audio/mpeg", "application/octet-stream", None),
    ("a.wav", "audio/wav", "audio/mpeg", None),
    ("a.m4a", "audio/mp4", "video/quicktime", None),
    # declared disagrees with the extension
    ("a.png", "image/jpeg", "image/png", None),
    ("a.mp3", "image/png", "image/png", None),
    ("a.flac", "audio/ogg", "audio/flac", None),
    # outside the allow-list entirely
    ("a.svg", "image/svg+xml", "image/svg+xml", None),
    ("a.html", "text/html", "text/html", None),
    ("noext", "image/png", "image/png", None),
])
def test_agrees(filename: str, declared: str, sniffed: str,
                expected: types.MediaType | None) -> None:
    assert types.agrees(filename, declared, sniffed) is expected


@pytest.mark.parametrize("extension", sorted(types.BY_EXTENSION))
def test_each_entry_agrees_with_its_canonical_type(extension: str) -> None:
    media = types.BY_EXTENSION[extension]
    assert types.accepted_at_intake(f"x{extension}", media.canonical) is media
    assert types.agrees(f"x{extension}", media.canonical, media.canonical) is media
    for declared in media.declared:
        assert types.agrees(f"x{extension.upper()}", declared, media.canonical) is media
    others = {m.canonical for m in types.BY_EXTENSION.values()} - media.declared
    for other in others:
        assert types.agrees(f"x{extension}", other, media.canonical) is None
