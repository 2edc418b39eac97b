"""The clamd client against a real clamd (project signatures only) and against fake peers."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import magic
import pytest

from config.settings import Settings
from devstack.clamd import (
    EICAR,
    EICAR_SIGNATURE,
    MARKER,
    MARKER_SIGNATURE,
    ClamdServer,
)
from portcullis.clients.clamd import ClamdClient, ClamdScanError, ScanResult
from portcullis.errors import DependencyUnavailable

CLEAN = ScanResult(infected=False, signature=None)


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    server = ClamdServer(tmp_path_factory.mktemp("clamd")).start()
    yield server
    server.stop()


@pytest.fixture()
def client(clamd: ClamdServer) -> ClamdClient:
    return ClamdClient(clamd.tcp_url, timeout=10)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def make_png(text: bytes | None = None) -> bytes:
    """A valid 2x2 RGB PNG, optionally with a tEXt chunk holding ``text``."""
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    chunks = [_chunk(b"IHDR", ihdr)]
    if text is not None:
        chunks.append(_chunk(b"tEXt", b"Comment\x00" + text))
    chunks += [_chunk(b"IDAT", zlib.compress(pixels)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


# -- a real clamd -------------------------------------------------------------------------

def test_ping_and_version_over_tcp_and_unix(clamd: ClamdServer) -> None:
    for url in (clamd.tcp_url, clamd.unix_url):
        client = ClamdClient(url, timeout=5)
        assert client.ping() is True
        assert client.version().startswith("ClamAV 1.")
    assert clamd.env() == {"CLAMD_URL": clamd.tcp_url}
    assert clamd.start_seconds is not None


def test_from_settings_uses_clamd_url(clamd: ClamdServer) -> None:
    client = ClamdClient.from_settings(Settings(CLAMD_URL=clamd.unix_url))
    assert client.url == clamd.unix_url
    assert client.ping()


def test_clean_bytes_are_clean(client: ClamdClient) -> None:
    assert client.scan_stream([b"just some harmless bytes\n"]) == CLEAN
    assert client.scan_stream(io.BytesIO(make_png())) == CLEAN


def test_eicar_is_infected_over_tcp_and_unix(clamd: ClamdServer) -> None:
    for url in (clamd.tcp_url, clamd.unix_url):
        result = ClamdClient(url).scan_stream(io.BytesIO(EICAR + b"\r\n"))
        assert result == ScanResult(infected=True, signature=EICAR_SIGNATURE)


def test_marker_in_a_valid_png_is_infected(client: ClamdClient) -> None:
    png = make_png(b"made by " + MARKER + b" for tests")
    assert magic.from_buffer(png, mime=True) == "image/png"
    assert client.scan_stream([png]) == ScanResult(infected=True, signature=MARKER_SIGNATURE)


def test_marker_straddling_chunks_in_a_long_stream(clamd: ClamdServer) -> None:
    small = ClamdClient(clamd.tcp_url, chunk_size=4096)
    data = b"A" * (3 * 4096 - 10) + MARKER + b"B" * 9000  # marker crosses a 4 KiB boundary
    assert small.scan_stream(io.BytesIO(data)).signature == MARKER_SIGNATURE
    # The caller's own chunks may split it too; empty ones must not end the stream early.
    pieces = [b"", b"C" * 100_000, MARKER[:11], b"", MARKER[11:], b"D" * 70_000]
    assert small.scan_stream(iter(pieces)).signature == MARKER_SIGNATURE
    assert small.scan_stream(iter(pieces[:3])) == CLEAN


def test_marker_at_the_end_of_a_big_stream(client: ClamdClient) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB

    def blocks() -> Iterator[bytes]:
        for _ in range(20):
            yield block
        yield MARKER

    tracemalloc.start()
    try:
        result = client.scan_stream(blocks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.signature == MARKER_SIGNATURE
    assert peak < 4 * 1024 * 1024  # streamed, never gathered into one 20 MiB buffer


def test_stream_over_the_limit_is_an_error_not_clean(tmp_path: Path) -> None:
    server = ClamdServer(tmp_path / "small", stream_max_bytes=1024 * 1024).start()
    try:
        for url in (server.tcp_url, server.unix_url):
            client = ClamdClient(url, timeout=5)
            with pytest.raises(ClamdScanError, match="size limit exceeded"):
                client.scan_stream(b"\0" * 65536 for _ in range(64))  # 4 MiB
            assert client.scan_stream([b"\0" * 1024 * 1024]) == CLEAN  # the limit itself
    finally:
        server.stop()


def test_stopped_clamd_is_unavailable_at_once_and_restart_brings_it_back(
        clamd: ClamdServer) -> None:
    urls = (clamd.tcp_url, clamd.unix_url)
    clamd.stop()
    try:
        for url in urls:
            client = ClamdClient(url, timeout=10)
            began = time.monotonic()
            with pytest.raises(DependencyUnavailable) as caught:
                client.scan_stream([b"hello"])
            assert caught.value.dependency == "clamd"
            with pytest.raises(DependencyUnavailable):
                client.version()
            assert client.ping() is False
            assert time.monotonic() - began < 1.0
    finally:
        clamd.restart()
    assert (clamd.tcp_url, clamd.unix_url) == urls
    for url in urls:
        assert ClamdClient(url).scan_stream([EICAR]).signature == EICAR_SIGNATURE


# -- fake peers ---------------------------------------------------------------------------

class FakePeer:
    """A TCP server that hands each connection to ``handler`` on a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handler(conn)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture()
def fake_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], FakePeer]]:
    peers: list[FakePeer] = []

    def make(handler: Callable[[socket.socket], None]) -> FakePeer:
        peers.append(FakePeer(handler))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


def _read_exact(conn: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        data = conn.recv(size - len(buf))
        if not data:
            raise ConnectionError("peer closed")
        buf += data
    return buf


def _answer_after_stream(reply: bytes) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        assert _read_exact(conn, 10) == b"zINSTREAM\0"
        while size := struct.unpack(">I", _read_exact(conn, 4))[0]:
            _read_exact(conn, size)
        conn.sendall(reply)
    return handler


def test_hung_peer_times_out_within_the_timeout(fake_peer: Callable[..., FakePeer]) -> None:
    peer = fake_peer(lambda conn: threading.Event().wait(30))  # accepts, never reads
    client = ClamdClient(peer.url, timeout=0.3)
    for call in (client.version, lambda: client.scan_stream([b"small"]),
                 lambda: client.scan_stream(b"\0" * 65536 for _ in range(1024))):
        began = time.monotonic()
        with pytest.raises(DependencyUnavailable, match="timed out"):
            call()
        assert time.monotonic() - began < 1.0
    assert client.ping() is False


@pytest.mark.parametrize(("reply", "expected"), [
    (b"stream: OK\0", CLEAN),
    (b"stream: Some.Sig-1 FOUND\0", ScanResult(infected=True, signature="Some.Sig-1")),
])
def test_verdicts_are_parsed(fake_peer: Callable[..., FakePeer], reply: bytes,
                             expected: ScanResult) -> None:
    peer = fake_peer(_answer_after_stream(reply))
    assert ClamdClient(peer.url, timeout=2).scan_stream([b"x" * 200_000]) == expected


@pytest.mark.parametrize("reply", [
    b"stream: Can't allocate memory ERROR\0",
    b"stream: OK.\0",
    b"stream: OK FOUND ERROR\0",
    b"stream:  FOUND\0",
    b"OK\0",
    b"\0",
    b"x" * 10_000,
])
def test_anything_else_is_no_verdict(fake_peer: Callable[..., FakePeer], reply: bytes) -> None:
    peer = fake_peer(_answer_after_stream(reply))
    with pytest.raises(ClamdScanError):
        ClamdClient(peer.url, timeout=2).scan_stream([b"data"])


def test_reply_cut_short_is_unavailable(fake_peer: Callable[..., FakePeer]) -> None:
    peer = fake_peer(_answer_after_stream(b"stream: OK"))  # then closes, no NUL
    with pytest.raises(DependencyUnavailable):
        ClamdClient(peer.url, timeout=2).scan_stream([b"data"])


def test_reply_before_the_end_of_the_stream_is_never_clean(
        fake_peer: Callable[..., FakePeer]) -> None:
    def handler(conn: socket.socket) -> None:
        _read_exact(conn, 10)
        conn.sendall(b"stream: OK\0")
        threading.Event().wait(5)

    peer = fake_peer(handler)

    def slow() -> Iterator[bytes]:
        for _ in range(20):
            time.sleep(0.01)
            yield b"data" * 100

    with pytest.raises(ClamdScanError):
        ClamdClient(peer.url, timeout=2).scan_stream(slow())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:3310", "tcp://:3310", "unix://relative/clamd.sock", "127.0.0.1:3310",
])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="clamd URL"):
        ClamdClient(url)


# -- the signature version ------------------------------------------------------------------

def test_a_clamd_without_a_versioned_database_reports_signature_version_0(
        client: ClamdClient) -> None:
    """The test clamd loads unsigned signatures only: VERSION carries no database field."""
    assert "/" not in client.version()
    assert client.signature_version() == 0


@pytest.mark.parametrize(("reply", "expected"), [
    (b"ClamAV 1.4.6/27500/Tue Dec  3 09:24:01 2026\0", 27500),
    (b"ClamAV 1.0.9/27499/Mon Dec  2 09:20:00 2026\0", 27499),
    (b"ClamAV 1.4.6\0", 0),
])
def test_the_signature_version_is_the_databases_number(
        fake_peer: Callable[..., FakePeer], reply: bytes, expected: int) -> None:
    def handler(conn: socket.socket) -> None:
        assert _read_exact(conn, 9) == b"zVERSION\0"
        conn.sendall(reply)

    assert ClamdClient(fake_peer(handler).url, timeout=5).signature_version() == expected


@pytest.mark.parametrize("reply", [b"ClamAV \0", b"ClamAV 1.4.6/latest/today\0",
                                   b"UNKNOWN COMMAND\0"])
def test_a_version_that_cannot_be_read_is_never_taken_for_one(
        fake_peer: Callable[..., FakePeer], reply: bytes) -> None:
    def handler(conn: socket.socket) -> None:
        _read_exact(conn, 9)
        conn.sendall(reply)

    with pytest.raises(ClamdScanError):
        ClamdClient(fake_peer(handler).url, timeout=5).signature_version()
