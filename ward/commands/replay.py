"""`vward replay`: backtest the alert rules on stored or simulated readings.

Input: readings from the database (``--start``/``--end``, optionally ``--patients``) or a file
(``.csv`` with a header, or ``.jsonl``) with fields ``patient_id`` or ``patient_key``, ``code``,
``measured_at`` (ISO 8601 with offset), ``value`` and optionally ``device_id``; extra fields
are ignored. Optional ``--truth`` ground truth (JSON lines; format in docs/architecture.md).
Prints alerts per patient-day by kind and, with ground truth, how early each deterioration
was caught. A bad line is reported with its number on stderr and skipped; the exit status is
then 1.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from alerting import replay
from alerting.care_plan_store import load_care_plan
from alerting.replay import ReplayReading, TruthEvent
from alerting.runner import default_policy
from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="readings as .csv or .jsonl (else the database)")
    parser.add_argument("--start", type=dt.datetime.fromisoformat, help="database range start (ISO)")
    parser.add_argument("--end", type=dt.datetime.fromisoformat, help="database range end (ISO)")
    parser.add_argument("--patients", type=lambda s: [int(x) for x in s.split(",")],
                        help="comma-separated patient ids (database input)")
    parser.add_argument("--truth", help="simulator ground truth, JSON lines")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _aware(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return when.astimezone(dt.UTC)


def _patient(row: dict[str, Any]) -> str:
    key = row.get("patient_id") if row.get("patient_id") not in (None, "") else row.get("patient_key")
    if key in (None, ""):
        raise ValueError("needs patient_id or patient_key")
    return str(key)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".csv":
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, dict(row), ""
            return
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, None, f"not JSON: {exc.msg}"
                continue
            yield number, data if isinstance(data, dict) else None, "" if isinstance(data, dict) else "not an object"


def _matching(row: dict[str, Any] | Any, default: str, seen: set[str],
              keys: dict[str, str] | None = None) -> str:
    """The patient a truth record is about, in the readings' own keys."""
    for field in ("patient_id", "patient_key"):
        value = row.get(field) if isinstance(row, dict) else None
        if value in (None, ""):
            continue
        if str(value) in seen:
            return str(value)
        if keys and str(value) in keys:
            return keys[str(value)]
    return default


def read_readings(path: Path, errors: list[str]) -> list[ReplayReading]:
    out = []
    for number, row, problem in _rows(path):
        try:
            if row is None:
                raise ValueError(problem)
            out.append(ReplayReading(_patient(row), str(row["code"]), _aware(str(row["measured_at"])),
                                     float(row["value"]), str(row.get("device_id") or "replay")))
        except (KeyError, ValueError, TypeError) as exc:
            errors.append(f"{path}:{number}: {exc}")
    return out


# Ground-truth records about the whole run rather than one patient.
_RUN_EVENTS = frozenset({"scenario", "summary"})


def read_truth(path: Path, errors: list[str]) -> list[TruthEvent]:
    out = []
    for number, row, problem in _rows(path):
        try:
            if row is None:
                raise ValueError(problem)
            if row.get("event") in _RUN_EVENTS:
                continue
            out.append(TruthEvent(_patient(row), str(row["event"]), _aware(str(row["at"])), row))
        except (KeyError, ValueError, TypeError) as exc:
            errors.append(f"{path}:{number}: {exc}")
    return out


def _from_db(
    settings: Settings, args: argparse.Namespace
) -> tuple[list[ReplayReading], dict[str, Any], dict[str, str]]:
    """Stored readings keyed by patient id, their care plans, and NHS number → patient id
    (ground truth written before registration names patients by NHS number only)."""
    if args.start is None or args.end is None:
        raise SystemExit("vward replay: give a FILE, or --start and --end for stored readings")
    with psycopg.connect(settings.database_conninfo()) as conn:
        query = ("SELECT patient_id, code, measured_at, value, device_id FROM readings "
                 "WHERE measured_at >= %s AND measured_at < %s")
        params: list[Any] = [_aware(args.start.isoformat()), _aware(args.end.isoformat())]
        if args.patients:
            query += " AND patient_id = ANY(%s)"
            params.append(args.patients)
        rows = conn.execute(query, params).fetchall()
        readings = [ReplayReading(str(p), c, m, v, d) for p, c, m, v, d in rows]
        ids = sorted({int(r.patient) for r in readings})
        plans = {str(p): load_care_plan(conn, p) for p in ids}
        keys = {str(nhs): str(pid) for pid, nhs in conn.execute(
            "SELECT id, nhs_number FROM patients WHERE id = ANY(%s)", (ids,))}
    return readings, plans, keys


def _minutes(delta: dt.timedelta | None) -> str:
    return "—" if delta is None else f"{delta.total_seconds() / 60:+.0f} min"


def run(args: argparse.Namespace, settings: Settings) -> int:
    errors: list[str] = []
    plans: dict[str, Any] = {}
    keys: dict[str, str] = {}
    if args.file:
        readings = read_readings(Path(args.file), errors)
    else:
        readings, plans, keys = _from_db(settings, args)
    truth = read_truth(Path(args.truth), errors) if args.truth else []
    # Ground truth may carry both keys; use whichever the readings are keyed by.
    seen = {r.patient for r in readings}
    truth = [TruthEvent(_matching(t.extra, t.patient, seen, keys), t.event, t.at, t.extra)
             for t in truth]
    for error in errors:
        print(f"vward replay: {error}", file=sys.stderr)
    report = replay.run(readings, default_policy().ack_within, plans=plans, truth=truth)
    if args.json:
        print(json.dumps({
            "patient_days": report.patient_days, "alerts": dict(report.per_kind),
            "alerts_per_patient_day": report.per_patient_day(),
            "deteriorations": [{
                "patient": c.patient, "deterioration_at": c.deterioration_at.isoformat(),
                "first_alert": None if c.first_alert is None else {
                    "kind": c.first_alert.kind.value, "at": c.first_alert.at.isoformat()},
                "delay_minutes": None if c.delay is None else c.delay.total_seconds() / 60,
                "lead_over_news2_5_minutes": None if c.lead_over(c.crossed_5) is None
                else c.lead_over(c.crossed_5).total_seconds() / 60,  # type: ignore[union-attr]
            } for c in report.catches]}, indent=2))
        return 1 if errors else 0
    print(f"{len(readings)} readings, {report.patient_days:.1f} patient-days, "
          f"{len(report.raised)} alerts raised")
    print(f"{'kind':<26}{'alerts':>8}{'per patient-day':>18}")
    for kind, rate in report.per_patient_day().items():
        print(f"{kind:<26}{report.per_kind[kind]:>8}{rate:>18.2f}")
    if report.catches:
        print("\ndeterioration caught (delay after start; lead before NEWS2 crossed 5 / 7):")
        for c in report.catches:
            first = "MISSED" if c.first_alert is None else f"{c.first_alert.kind.value} {_minutes(c.delay)}"
            print(f"  patient {c.patient} at {c.deterioration_at.isoformat()}: {first}; "
                  f"lead {_minutes(c.lead_over(c.crossed_5))} / {_minutes(c.lead_over(c.crossed_7))}")
    return 1 if errors else 0
