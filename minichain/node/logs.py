"""The node's log lines: readable text by default, or one JSON object per line.

A log call that matters to an operator names its *event* and its fields with
:func:`event`::

    log.info("new tip %s height %d", short, height, extra=event("tip", block=hash_hex, height=height))

The text format (the default) prints the message as it always did; the JSON format
(``minichain node --log-format json``) prints one object per line, for ``jq`` and log
shippers (Vector, Promtail, Fluent Bit)::

    {"time": "2025-01-02T03:04:05.678Z", "level": "info", "logger": "minichain.node",
     "event": "tip", "message": "new tip 00ab... height 7", "block": "00ab...", "height": 7}

``time`` is UTC (ISO 8601, milliseconds), ``level`` is lower case, ``event`` is
``"log"`` for a line that names none (libraries, rare messages), and an exception's
traceback is the field ``exc``. The fields are flat: ``peer`` (HOST:PORT), ``block``
and ``txid`` (hex as the explorer shows them), ``height``, ``reason``, and a few more
per event.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
FORMATS = ("text", "json")
RESERVED = frozenset({"time", "level", "logger", "event", "message", "exc"})


def event(name: str, **fields: Any) -> dict:
    """The ``extra=`` of a log call: its event name and fields (JSON values, or str()-able)."""
    clash = RESERVED.intersection(fields)
    if clash:
        raise ValueError(f"log field names {sorted(clash)} are reserved")
    return {"event": name, "fields": fields}


def utc_iso(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger of a node (or replica) process."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def ready_line(text: str, fmt: str, **fields: Any) -> str:
    """The line a process prints on stdout when it is ready (the supervisor searches it
    for ``text``): the text itself, or in the JSON format an ``event: ready`` object whose
    message is that text."""
    if fmt != "json":
        return text
    return json.dumps({"time": utc_iso(time.time()), "level": "info", "logger": "minichain", "event": "ready",
                       "message": text, **fields})
