"""`VW_LOG_FORMAT=json`: one JSON object a line, with the operator's fields lifted out."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from ward.logformat import json_record, message_fields


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gateway.ingest", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("mqtt connected broker=mqtt://h:1 generation=2", {"broker": "mqtt://h:1",
                                                           "generation": "2"}),
        ('rejected device=pox-1 reason="unknown unit"', {"device": "pox-1",
                                                         "reason": "unknown unit"}),
        ("no pairs here (really)", {}),
        ("level=x msg=y ts=z device=d", {"device": "d"}),  # never overwrite the envelope
        ("device=a device=b", {"device": "a"}),
    ],
)
def test_message_fields(message: str, fields: dict[str, str]) -> None:
    assert message_fields(message) == fields


def test_json_record_has_envelope_and_structured_fields() -> None:
    out = json_record(_record("batch committed batch=%d readings=%d", 7, 500,
                              device="pox-9", patient=42, reason=None))
    assert out["level"] == "WARNING"
    assert out["logger"] == "gateway.ingest"
    assert out["msg"] == "batch committed batch=7 readings=500"
    assert out["batch"] == "7"
    assert out["device"] == "pox-9"
    assert out["patient"] == 42
    assert "reason" not in out
    assert out["ts"].endswith("+00:00")


def test_vward_logging_writes_json_lines() -> None:
    code = ("from ward.cli import configure_logging; import logging; "
            "configure_logging('INFO', 'json'); "
            "logging.getLogger('gateway').info('rejected device=%s reason=%s', 'pox-1', 'x'); "
            "logging.getLogger('gateway').debug('not shown')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=30)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = json.loads(lines[0])
    assert (line["device"], line["reason"], line["level"]) == ("pox-1", "x", "INFO")
