"""Log lines: one JSON object per line on stderr, formatted by python-json-logger.

Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `logger` and `event` (the log
call's message: a short snake_case name); what else the line says comes as fields, given as
`extra=` to the logging call:

    log.info("serving", extra={"grpc_port": 50051})
    -> {"ts": "2026-05-29T14:35:00.000Z", "level": "info", "logger": "notes",
        "event": "serving", "grpc_port": 50051}
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter


class _Formatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "message": "event"},
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()


def configure(level: int = logging.INFO) -> None:
    """The root logger writes JSON lines to stderr (runtime then moves the writing to a
    thread of its own, off the request path)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # No line shows where it was logged from, nor the thread or process: records skip finding
    # them (logging's own switches; a stack walk per record was most of a log call's cost).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
