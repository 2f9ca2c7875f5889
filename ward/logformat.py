"""Log line formats for operators: logfmt-style text (the default) or one JSON object a line.

`VW_LOG_FORMAT=json` is for a log collector (Loki, Elasticsearch, CloudWatch): every line is a
JSON object with `ts`, `level`, `logger` and `msg`, and the facts an operator filters by —
`device`, `patient`, `batch`, `reason` — as fields of their own. They come from either place a
module may put them: `log.info(..., extra={"device": ...})`, or the message's own logfmt
`key=value` words (`mqtt connected broker=… generation=2`), which every module here already
writes. So no module has to change its log calls for the JSON form to be useful.

`json_record` is pure (a `LogRecord` in, a dict out); `JsonFormatter` only serialises it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
# Fields a module may pass through `extra=`; named in docs/mqtt.md (operations).
STRUCTURED_FIELDS = ("device", "patient", "batch", "reason")
# `key=value` words of a logfmt-style message; a value runs to the next space (or is quoted).
_PAIR = re.compile(r'(?<![\w.])([a-z][a-z0-9_]*)=("[^"]*"|[^\s,;()]+)')
# The envelope's own keys: a message word of the same name never overwrites them.
_RESERVED = frozenset({"ts", "level", "logger", "msg", "exc"})


def message_fields(message: str) -> dict[str, str]:
    """The `key=value` words of a logfmt-style message (quotes removed), first one wins."""
    fields: dict[str, str] = {}
    for key, value in _PAIR.findall(message):
        if key not in _RESERVED:
            fields.setdefault(key, value.strip('"'))
    return fields


def json_record(record: logging.LogRecord, exc_text: str | None = None) -> dict[str, Any]:
    """The JSON object of one log record."""
    message = record.getMessage()
    out: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "msg": message,
    }
    out.update(message_fields(message))
    for name in STRUCTURED_FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            out[name] = value if isinstance(value, int | float | str | bool) else str(value)
    if exc_text:
        out["exc"] = exc_text
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object a line (`json_record`), exceptions included as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        exc_text = self.formatException(record.exc_info) if record.exc_info else None
        return json.dumps(json_record(record, exc_text), ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    """The formatter for `VW_LOG_FORMAT` (`text` or `json`)."""
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)
