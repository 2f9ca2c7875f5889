"""`vward replay`: backtest the alert rules on stored or simulated readings.

Input: readings from the database (``--start``/``--end``, optionally ``--patients``) or a file
(``.csv`` with a header, or ``.jsonl``) with fields ``patient_id`` or ``patient_key``, ``code``,
``measured_at`` (ISO 8601 with offset), ``value`` and optionally ``device_id``; extra fields
are ignored. Optional ``--truth`` ground truth (JSON lines; format in docs/architecture.md).
Prints episodes, pages and findings per patient-day by kind — split by patients who did and
did not deteriorate — the timer sweeps run between readings (overdue, escalation of episodes
nobody acknowledges), and, with ground truth, how early each deterioration was caught (lead
over the true NEWS2 reaching 5 and 7, per kit: ``continuous`` when the patient's ground-truth
devices include a wearable, else ``spot``). ``--json`` prints the same figures. A bad line is reported with its number on stderr and skipped; the exit status is
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
from alerting.care_plan import CarePlan
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


def kits_of(truth: list[TruthEvent]) -> dict[str, str]:
    """Patient → kit, from the ground truth's ``patient`` records (their device types)."""
    out = {}
    for t in truth:
        if t.event == "patient":
            types = {str(d.get("type")) for d in t.extra.get("devices") or () if isinstance(d, dict)}
            out[t.patient] = "continuous" if "wearable_oximeter" in types else "spot"
    return out


def plans_of(truth: list[TruthEvent]) -> dict[str, Any]:
    """Care plans for a file replay: Scale 2 (target 88–92 %) for the patients the ground
    truth's ``patient`` records put on Scale 2 — as ``vward simulate`` registers them."""
    return {t.patient: CarePlan(0, spo2_scale=2, spo2_target_low=88.0, spo2_target_high=92.0)
            for t in truth if t.event == "patient" and t.extra.get("spo2_scale") == 2}


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
    if args.file:
        plans = plans_of(truth)
    policy = default_policy()
    report = replay.run(readings, policy.ack_within, plans=plans, truth=truth, policy=policy,
                        kits=kits_of(truth))
    summary = report.summary()
    if args.json:
        print(json.dumps({
            **summary, "episodes": len(report.episodes), "findings": dict(report.per_kind),
            "findings_per_patient_day": report.per_patient_day(),
            "catches": [{
                "patient": c.patient, "kit": c.kit,
                "deterioration_at": c.deterioration_at.isoformat(),
                "first_alert": None if c.first_alert is None else {
                    "kind": c.first_alert.kind, "event": c.first_alert.event,
                    "at": c.first_alert.at.isoformat()},
                "delay_minutes": _mins(c.delay),
                "lead_over_news2_5_minutes": _mins(c.lead_over(c.crossed_5)),
                "lead_over_news2_7_minutes": _mins(c.lead_over(c.crossed_7)),
                "minutes_after_first_set_5": _mins(c.after_first_set),
            } for c in report.catches]}, indent=2, default=str))
        return 1 if errors else 0
    print(f"{len(readings)} readings, {report.patient_days:.1f} patient-days, "
          f"{len(report.episodes)} episodes, {summary['sweeps']} timer sweeps "
          f"({summary['escalations']} escalations of unacknowledged episodes)")
    print(f"{'patients':<18}{'n':>5}{'days':>8}{'episodes/d':>12}{'clinical/d':>12}{'pages/d':>10}")
    for name, g in summary["groups"].items():
        print(f"{name:<18}{g['patients']:>5}{g['patient_days']:>8.1f}"
              f"{g['episodes_per_patient_day']:>12.2f}"
              f"{g['clinical_episodes_per_patient_day']:>12.2f}{g['pages_per_patient_day']:>10.2f}")
    print(f"\n{'finding':<26}{'started':>8}{'per patient-day':>18}")
    for kind, rate in report.per_patient_day().items():
        print(f"{kind:<26}{report.per_kind[kind]:>8}{rate:>18.2f}")
    if report.catches:
        print("\ndeterioration caught (delay after start; lead before NEWS2 crossed 5 / 7):")
        for c in report.catches:
            first = ("MISSED" if c.first_alert is None
                     else f"{c.first_alert.kind} {_minutes(c.delay)}")
            print(f"  patient {c.patient} ({c.kit}) at {c.deterioration_at.isoformat()}: "
                  f"{first}; lead {_minutes(c.lead_over(c.crossed_5))} / "
                  f"{_minutes(c.lead_over(c.crossed_7))}")
        for kit, k in summary["per_kit"].items():
            print(f"  {kit}: caught {k['caught']}/{k['count']}, before NEWS2 7 "
                  f"{k['caught_before_7']}/{k['crossed_7']}, median lead 5 / 7: "
                  f"{_h(k['median_lead_5_h'])} / {_h(k['median_lead_7_h'])}, "
                  f"max after first set >= 5: {_m(k['max_minutes_after_first_set_5'])}")
    return 1 if errors else 0


def _mins(delta: dt.timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds() / 60


def _h(hours: float | None) -> str:
    return "—" if hours is None else f"{hours:+.1f} h"


def _m(minutes: float | None) -> str:
    return "—" if minutes is None else f"{minutes:+.0f} min"
