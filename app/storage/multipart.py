"""Read one file part of a multipart body as a stream, without buffering the body.

The part's headers (filename, declared type) are available before any of its bytes are
read, so a refused type costs nothing; the bytes then arrive in chunks. A body that is not
well-formed multipart (no headers, no boundary where one belongs, truncated, no closing
boundary, non-UTF-8 or oversized part headers, more than one file) is a 400
``validation_error``, raised before the upload is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, NoReturn

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    File,
    MultipartDecoder,
)

from app.problems import Problem

READ_SIZE = 16 * 1024
# The decoder may hold back a partial boundary between reads; its buffer limit must leave
# room for that plus a whole read, or a large file trips it (413) halfway through. It also
# bounds a part's headers, the preamble and the epilogue.
DECODER_BUFFER = 4 * READ_SIZE
MAX_PARTS = 8
# RFC 2046 §5.1.1's characters, not ending in a space. The RFC asks for at most 70 of them,
# but real senders exceed it (werkzeug's own test client makes up to ~72), and a longer one
# costs the decoder nothing; 200 is the bound.
MAX_BOUNDARY = 200
_BOUNDARY = re.compile(
    rf"[0-9A-Za-z'()+_,\-./:=? ]{{0,{MAX_BOUNDARY - 1}}}[0-9A-Za-z'()+_,\-./:=?]")


def malformed(detail: str, loc: list[str] | None = None) -> Problem:
    """The one answer for a body that is not the multipart the route documents."""
    return Problem(400, "validation_error", detail,
                   errors=[{"loc": loc or ["body"], "msg": detail}])


def boundary_of(params: dict[str, str]) -> bytes:
    """The Content-Type's boundary, if RFC 2046 allows it (the decoder trusts it)."""
    boundary = params.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        raise malformed(f"Content-Type multipart/form-data needs a boundary of 1 to "
                        f"{MAX_BOUNDARY} characters (RFC 2046's set).",
                        ["header", "Content-Type"])
    return boundary.encode("ascii")


class FilePart:
    def __init__(self, stream: IO[bytes], boundary: bytes, field: str = "file") -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=DECODER_BUFFER,
                                         max_parts=MAX_PARTS)
        self._field = field
        self.filename: str | None = None
        self.content_type = "application/octet-stream"

    def _events(self) -> Iterator[Event]:
        """The decoder's events; its refusals become 400s (the stream's own errors, such as
        the request's size limit or a client that went away, pass through)."""
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:  # no headers, no Content-Disposition, truncated, non-UTF-8
                self._refuse(exc)
            except RequestEntityTooLarge:  # part headers, preamble or epilogue; too many parts
                raise malformed(f"Part headers, preamble and epilogue are limited to "
                                f"{DECODER_BUFFER} bytes, and a body to {MAX_PARTS} "
                                f"parts.") from None
            if event is NEED_DATA:
                data = self._stream.read(READ_SIZE)
                try:
                    self._decoder.receive_data(data or None)
                except RequestEntityTooLarge:
                    raise malformed(f"Part headers, preamble and epilogue are limited to "
                                    f"{DECODER_BUFFER} bytes.") from None
                continue
            yield event
            if isinstance(event, Epilogue):
                return

    @staticmethod
    def _refuse(exc: ValueError) -> NoReturn:
        if isinstance(exc, UnicodeDecodeError):
            raise malformed("Part headers must be UTF-8.") from None
        raise malformed("The body is not valid multipart/form-data: every part needs "
                        "headers with a Content-Disposition, and the body must end with "
                        "the closing boundary.") from None

    def _extra_file(self, event: File) -> NoReturn:
        raise malformed(f"Send exactly one file, in the field '{self._field}'.",
                        ["body", event.name or self._field])

    def open(self) -> FilePart:
        """Advance to the ``file`` part; 400 if there is none, or another file comes first."""
        self._iter = self._events()
        for event in self._iter:
            if isinstance(event, File):
                if event.name != self._field:
                    self._extra_file(event)
                self.filename = event.filename
                self.content_type = event.headers.get("Content-Type",
                                                      "application/octet-stream")
                return self
        raise Problem(400, "validation_error", "Send the file in a multipart field named 'file'.",
                      errors=[{"loc": ["body", self._field], "msg": "Field required"}])

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes; then the rest of the body is read to its closing boundary, so a
        truncated body or a second file is refused before anything is stored."""
        for event in self._iter:
            if isinstance(event, Data):
                if event.data:
                    yield event.data
                if not event.more_data:
                    break
        self._drain()

    def _drain(self) -> None:
        """Skip plain fields after the file (bounded by the request's size limit); the
        events end only with the epilogue, anything short of it raises."""
        for event in self._iter:
            if isinstance(event, File):
                self._extra_file(event)
