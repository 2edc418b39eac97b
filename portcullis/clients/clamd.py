"""A small, strict client for clamd's socket protocol (PING, VERSION, INSTREAM).

We write our own because the PyPI ``clamd`` package dates from 2017, imports
``pkg_resources`` and has no timeouts on chunked streams.

Every call opens its own connection (the client is safe to share between threads) and uses
the ``z``-prefixed, NUL-terminated command form. A verdict is only ever what clamd said in
so many words: ``stream: OK`` is clean, ``stream: <Sig> FOUND`` is infected, and anything
else raises, so a caller can never mistake a failed scan for a clean one.

``signature_version`` is the number of the signature database clamd has loaded (the middle
field of ``ClamAV 1.4.6/27500/Tue Dec  3 09:24:01 2026``: freshclam's ``daily`` version,
which only grows), so stored files can be scanned again once it has moved on. clamd leaves
the field out when it loaded no official (versioned) database, only unsigned ones, as the
test suite's clamd does (``ClamAV 1.4.6``): that is version 0, older than any real one.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from portcullis.errors import DependencyUnavailable

if TYPE_CHECKING:
    from config.settings import Settings

DEPENDENCY = "clamd"
DEFAULT_PORT = 3310
MAX_REPLY_BYTES = 4096  # clamd's replies are one short line; more means a confused peer.

_FOUND = re.compile(r"stream: (?P<sig>\S(?:[^\x00\r\n]*\S)?) FOUND")
_VERSION = re.compile(r"ClamAV (?P<engine>[^/\s]+)(?:/(?P<signatures>\d+)(?:/[^\x00]*)?)?")
_END_OF_STREAM = struct.pack(">I", 0)


class ClamdScanError(Exception):
    """clamd answered but reached no verdict (``... ERROR`` or an unparseable reply).

    Never treat this as clean: the file was not (fully) scanned.
    """

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(f"clamd reached no verdict: {reply!r}")


@dataclass(frozen=True, slots=True)
class ScanResult:
    infected: bool
    signature: str | None = None


class ClamdClient:
    """Talks to one clamd over ``tcp://host:port`` or ``unix:///path``.

    ``connect_timeout`` bounds the connection attempt; ``timeout`` bounds every write while
    streaming and the whole wait for clamd's reply, so a hung peer is noticed within it.
    """

    def __init__(self, url: str, timeout: float = 30.0, chunk_size: int = 64 * 1024,
                 *, connect_timeout: float | None = None) -> None:
        if timeout <= 0 or chunk_size <= 0:
            raise ValueError("timeout and chunk_size must be positive")
        self.url = url
        self.timeout = timeout
        self.connect_timeout = min(timeout, 5.0) if connect_timeout is None else connect_timeout
        self.chunk_size = chunk_size
        self._address = _parse_url(url)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClamdClient:
        return cls(settings.CLAMD_URL)

    # -- public commands ---------------------------------------------------------------

    def ping(self) -> bool:
        """True when clamd answers PONG; False when it is unreachable or says anything else.

        Meant for health checks, so it never raises for an outage.
        """
        try:
            return self._command(b"zPING\0") == "PONG"
        except DependencyUnavailable:
            return False

    def version(self) -> str:
        """clamd's version line, e.g. ``ClamAV 1.4.6/27500/...``."""
        reply = self._command(b"zVERSION\0")
        if not reply.startswith("ClamAV "):
            raise ClamdScanError(reply)
        return reply

    def signature_version(self) -> int:
        """The version of clamd's signature database; 0 when it reports none."""
        return parse_signature_version(self.version())

    def scan_stream(self, chunks: Iterable[bytes] | BinaryIO) -> ScanResult:
        """Stream data to clamd with INSTREAM, holding at most one chunk in memory.

        Accepts a binary file object (read ``chunk_size`` at a time) or any iterable of
        bytes. Raises DependencyUnavailable when clamd cannot be reached or stops
        answering, ClamdScanError when it answers without a verdict.
        """
        with self._connect() as sock:
            early = self._send_stream(sock, _chunks_of(chunks, self.chunk_size))
            if early is not None:  # said before it had the whole stream: never a verdict
                raise ClamdScanError(early)
            reply = self._read_reply(sock)
        return _parse_scan_reply(reply)

    # -- plumbing ----------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        try:
            if isinstance(self._address, tuple):
                sock = socket.create_connection(self._address, timeout=self.connect_timeout)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.connect_timeout)
                    sock.connect(self._address)
                except OSError:
                    sock.close()
                    raise
        except OSError as exc:  # refused, missing socket file, timeout, unreachable
            raise DependencyUnavailable(DEPENDENCY, f"connect failed: {_describe(exc)}") from exc
        sock.settimeout(self.timeout)
        return sock

    def _command(self, command: bytes) -> str:
        with self._connect() as sock:
            self._send(sock, command)
            return self._read_reply(sock)

    def _send(self, sock: socket.socket, data: bytes | memoryview) -> None:
        try:
            sock.sendall(data)
        except OSError as exc:
            raise DependencyUnavailable(DEPENDENCY, f"send failed: {_describe(exc)}") from exc

    def _send_stream(self, sock: socket.socket, chunks: Iterator[memoryview]) -> str | None:
        """Send INSTREAM; returns whatever clamd said before the end (it only does to refuse)."""
        self._send(sock, b"zINSTREAM\0")
        for chunk in chunks:
            try:
                sock.sendall(struct.pack(">I", len(chunk)))
                sock.sendall(chunk)
            except OSError as exc:
                # clamd closes the connection after refusing a stream (e.g. size limit);
                # its reason may already be waiting for us, and beats a bare reset.
                early = self._early_reply(sock)
                if early is not None:
                    return early
                raise DependencyUnavailable(
                    DEPENDENCY, f"send failed: {_describe(exc)}") from exc
            if _readable(sock):  # clamd never speaks mid-stream unless refusing it
                return self._read_reply(sock)
        self._send(sock, _END_OF_STREAM)
        return None

    def _early_reply(self, sock: socket.socket) -> str | None:
        with contextlib.suppress(DependencyUnavailable):
            if _readable(sock):
                reply = self._read_reply(sock)
                return reply or None
        return None

    def _read_reply(self, sock: socket.socket) -> str:
        """Read up to the terminating NUL, within ``timeout`` overall."""
        deadline = time.monotonic() + self.timeout
        buf = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DependencyUnavailable(DEPENDENCY, "timed out waiting for a reply")
            try:
                sock.settimeout(remaining)
                data = sock.recv(1024)
            except OSError as exc:
                raise DependencyUnavailable(
                    DEPENDENCY, f"receive failed: {_describe(exc)}") from exc
            if not data:  # a reply without its NUL may be cut short: no verdict from it
                raise DependencyUnavailable(DEPENDENCY, "connection closed before the reply")
            buf += data
            end = buf.find(b"\0")
            if end >= 0:
                del buf[end:]
                break
            if len(buf) > MAX_REPLY_BYTES:
                raise ClamdScanError(buf[:200].decode("utf-8", "replace") + "...")
        return buf.decode("utf-8", "replace").strip()


def _parse_url(url: str) -> str | tuple[str, int]:
    """A (host, port) pair for tcp://, a socket path for unix://."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError("clamd URL needs a host: tcp://host:port")
        return parts.hostname, parts.port or DEFAULT_PORT
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("clamd URL needs an absolute path: unix:///path/to/clamd.sock")
        return parts.path
    raise ValueError("clamd URL must be tcp://host:port or unix:///path")


def _chunks_of(source: Iterable[bytes] | BinaryIO, size: int) -> Iterator[memoryview]:
    """Non-empty pieces of at most ``size`` bytes (an empty one would end the stream early)."""
    if isinstance(source, bytes | bytearray | memoryview):
        pieces: Iterable[bytes] = [bytes(source)]
    elif callable(read := getattr(source, "read", None)):
        pieces = iter(lambda: read(size), b"")
    else:
        pieces = source
    for piece in pieces:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise TypeError(f"scan_stream needs bytes, got {type(piece).__name__}")
        view = memoryview(piece).cast("B")
        for start in range(0, len(view), size):
            yield view[start:start + size]


def parse_signature_version(reply: str) -> int:
    """``ClamAV <engine>/<signatures>/<date>`` → signatures; ``ClamAV <engine>`` → 0.

    Anything else raises ClamdScanError: a version we cannot read is never taken for one.
    """
    parsed = _VERSION.fullmatch(reply)
    if parsed is None:
        raise ClamdScanError(reply)
    return int(parsed["signatures"] or 0)


def _parse_scan_reply(reply: str) -> ScanResult:
    if reply == "stream: OK":
        return ScanResult(infected=False, signature=None)
    found = _FOUND.fullmatch(reply)
    if found:
        return ScanResult(infected=True, signature=found["sig"])
    raise ClamdScanError(reply)


def _readable(sock: socket.socket) -> bool:
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(ready)


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or type(exc).__name__
