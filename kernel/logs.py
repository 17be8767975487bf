"""Structured logs: one JSON object per line on standard error."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import TextIO

# Attributes every LogRecord has; anything else was passed in ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# json.dumps builds a new encoder on every call that passes options; build it once.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)

_stamp_cache: list[tuple[int, str]] = [(-1, "")]


def timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as the lines show it, UTC to the millisecond."""
    second = int(created)
    cached = _stamp_cache[0]
    if cached[0] != second:  # strftime once a second, not once a line
        cached = _stamp_cache[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class JsonLinesHandler(logging.StreamHandler[TextIO]):
    """JSON lines on a stream, written in batches rather than one write and flush per line.

    A line waits at most ``delay`` seconds (a daemon thread flushes); a
    warning or worse, ``max_lines`` waiting lines, and ``logging.shutdown``
    at exit flush at once.
    """

    def __init__(self, stream: TextIO, delay: float = 0.2, max_lines: int = 256) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.delay = delay
        self.max_lines = max_lines
        self.pending: list[str] = []
        threading.Thread(target=self._flush_every_delay, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add(self.format(record), urgent=record.levelno >= logging.WARNING)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit_line(self, line: str) -> None:
        """Write one already formatted JSON line (see :func:`request_line`)."""
        self.acquire()
        try:
            self._add(line, urgent=False)
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def _add(self, line: str, urgent: bool) -> None:
        self.pending.append(line)
        if urgent or len(self.pending) >= self.max_lines:
            self._write_pending()

    def _write_pending(self) -> None:
        if self.pending:
            lines, self.pending = self.pending, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _flush_every_delay(self) -> None:
        while True:
            time.sleep(self.delay)
            if self.pending:
                self.flush()


def only_json_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """The kernel's handler when it alone receives ``logger``'s INFO records, else None.

    Then a caller may hand it a formatted line (:meth:`JsonLinesHandler.emit_line`)
    instead of making a LogRecord. Any other set-up (a second handler, a
    filter, a test's capture handler) answers None and records go through
    ``logging`` as usual.
    """
    if not logger.isEnabledFor(logging.INFO):
        return None
    found: JsonLinesHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.disabled or current.filters:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLinesHandler or handler.filters or handler.level > logging.INFO:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found if found is not None and type(found.formatter) is JsonFormatter else None


def configure(level: str) -> None:
    """Send every log record, the server's own included, as JSON lines to standard error."""
    handler = JsonLinesHandler(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The lines show neither the caller's frame nor its thread or process:
    # skip collecting them (the logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are logged once, by the kernel (everything.requests). A `serve --workers` process sets its
    # logging up after uvicorn has, so it must silence uvicorn's access log itself.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False


_quote = json.encoder.encode_basestring


def request_line(
    request_id: str, method: str, path: str, status: int, duration_ms: float, user: str | None, client: str | None
) -> str:
    """The JSON line :class:`JsonFormatter` writes for a request record, built directly.

    Every request writes one, and building it from its known fields costs a
    quarter of making a dict and encoding it (bench/kernel_overhead.py).
    """
    return (
        f'{{"time":"{timestamp(time.time())}","level":"info","logger":"everything.requests","message":"request",'
        f'"event":"request","request_id":"{request_id}","method":{_quote(method)},"path":{_quote(path)},'
        f'"status":{status},"duration_ms":{duration_ms},"user":{"null" if user is None else _quote(user)},'
        f'"client":{"null" if client is None else _quote(client)}}}'
    )
