"""Read one file part of a multipart body as a stream, without buffering the body.

The part's headers (filename, declared type) are available before any of its bytes are
read, so a refused type costs nothing; the bytes then arrive in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder

from app.problems import Problem

READ_SIZE = 16 * 1024
# The decoder may hold back a partial boundary between reads; its buffer limit must leave
# room for that plus a whole read, or a large file trips it (413) halfway through.
DECODER_BUFFER = 4 * READ_SIZE


class FilePart:
    def __init__(self, stream: IO[bytes], boundary: bytes, field: str = "file") -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=DECODER_BUFFER,
                                         max_parts=8)
        self._field = field
        self._eof = False
        self.filename: str | None = None
        self.content_type = "application/octet-stream"
        self._first: Data | None = None

    def _events(self) -> Iterator[object]:
        while True:
            event = self._decoder.next_event()
            if event is NEED_DATA:
                if self._eof:
                    return
                data = self._stream.read(READ_SIZE)
                self._eof = not data
                self._decoder.receive_data(data or None)
                continue
            yield event
            if isinstance(event, Epilogue):
                return

    def open(self) -> FilePart:
        """Advance to the ``file`` part; 400 if there is none."""
        self._iter = self._events()
        current: str | None = None
        for event in self._iter:
            if isinstance(event, File | Field):
                current = event.name if isinstance(event, File) else None
                if isinstance(event, File) and event.name == self._field:
                    self.filename = event.filename
                    self.content_type = event.headers.get("Content-Type",
                                                          "application/octet-stream")
                    return self
            elif isinstance(event, Data) and current == self._field:
                continue
        raise Problem(400, "validation_error", "Send the file in a multipart field named 'file'.",
                      errors=[{"loc": ["body", self._field], "msg": "Field required"}])

    def chunks(self) -> Iterator[bytes]:
        for event in self._iter:
            if isinstance(event, Data):
                if event.data:
                    yield event.data
                if not event.more_data:
                    return
            else:
                return
