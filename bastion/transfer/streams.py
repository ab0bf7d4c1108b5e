"""A streamed download's body and response, shared by table exports and console downloads.

Rows are read from a streaming cursor in batches and written out as they come (constant
memory). When the client goes away the server closes the body, which closes the cursor and
the connection: no work goes on for nobody. An error in the middle aborts the transfer (the
file is visibly incomplete) instead of ending it as if complete. Whatever happens, the body's
``finished`` runs once, after the connection is closed: the place for the one audit event.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from sqlalchemy.exc import DBAPIError

from bastion.audit.models import Outcome
from bastion.connections.limits import is_timeout
from bastion.transfer import formats

Writer = Callable[[Sequence[str], formats.Batches], Iterator[bytes]]


class RowStream:
    """The body of one streamed file; subclasses say what a finished transfer records (``finished``)."""

    batch_rows = 1000  # the first batch; then as many rows as make about CHUNK_BYTES of output
    max_batch_rows = 5000
    chunk_bytes = 1 << 20
    what = "statement"  # for the message when the time limit stops it

    def __init__(self, request: HttpRequest | None, fmt: str, stack: contextlib.ExitStack, cursor: Any,
                 columns: Sequence[str], write: Writer) -> None:
        self.request, self.fmt, self.stack, self.cursor = request, fmt, stack, cursor
        self.columns, self.write = list(columns), write
        self.rows = self.bytes = 0
        self.outcome, self.message = Outcome.FAILURE, "the client went away before the end"
        self.started = time.monotonic()
        self.closed = False

    def rows_of(self, batch: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The rows of one batch as they are written (masking, for one)."""
        return batch

    def _batches(self) -> formats.Batches:
        while batch := self.cursor.fetchmany(self.batch_rows):
            self.rows += len(batch)
            yield self.rows_of(batch)

    def _next_batch_rows(self, rows: int, size: int) -> int:
        """Rows for the next batch, so that one batch's output is about ``chunk_bytes``: narrow rows go in big
        batches (fewer round trips), wide ones in small batches (bounded memory, T28)."""
        if rows <= 0 or size <= 0:
            return self.batch_rows
        return max(1, min(self.max_batch_rows, rows * self.chunk_bytes // size))

    def __iter__(self) -> Iterator[bytes]:
        try:
            before = 0
            for chunk in self.write(self.columns, self._batches()):
                self.bytes += len(chunk)
                self.batch_rows = self._next_batch_rows(self.rows - before, len(chunk))
                before = self.rows
                yield chunk
            self.outcome, self.message = Outcome.SUCCESS, ""
        except DBAPIError as exc:
            self.message = (f"the time limit stopped the {self.what}" if is_timeout(exc)
                            else "the database reported an error")
            raise
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.stack.close()
        finally:
            self.finished(round((time.monotonic() - self.started) * 1000, 1))

    def finished(self, elapsed_ms: float) -> None:
        raise NotImplementedError


def attachment(body: RowStream, name: str) -> StreamingHttpResponse:
    """The response streaming ``body`` as a file named ``name`` (a timestamp and the format's extension added)."""
    response = StreamingHttpResponse(body, content_type=formats.MEDIA_TYPES[body.fmt])
    filename = f"{name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.{body.fmt}"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response
