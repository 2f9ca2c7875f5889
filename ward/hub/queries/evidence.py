"""The evidence trace of a patient's findings, as the patient page's charts draw it.

Issue 10 asks for "every alert traceable to the readings that caused it" and for the trend's
*amber* findings "with the evidence shown". What the alerting core stores (migration 0070):

* ``alert_findings`` — one row per episode and kind: first found, cleared, its ``details``
  (for a trend, the learned baseline of each charted sign: ``details.charted``) and
  ``evidence``, the readings behind its *current* severity (the latest firing at that level);
* ``alert_events`` — the trace: ``raised`` (a new episode; ``detail.findings`` names the kinds
  it opened with, its evidence is the headline finding's), ``finding_raised`` /
  ``finding_updated`` / ``finding_cleared`` (``detail.finding`` names the kind), each with the
  readings it was decided on, and ``resolved``.

This module turns those into, per finding, the intervals it was active (raised → cleared, in
the window asked for) and every reading it cited, and per charted sign the band the trend
method considers normal for this patient. Fields are read by name and defensively: the trend
method may add or rename fields (a missing field draws less, never a wrong band).

Nothing here decides anything clinical; it reads what the core decided.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from alerting import trend
from alerting.candidates import Kind

Conn = psycopg.Connection[Any]
#: Episodes looked at per request: a patient with more in one window is a record to audit,
#: not a chart to draw (the alert queue still lists every one).
MAX_EPISODES = 100
#: Readings kept per finding on the chart (newest first): a continuous device cites two a
#: firing, so this is hours of evidence; more only clutters the line it sits on.
MAX_READINGS = 400
#: Names of the kinds as a nurse reads them on the chart.
KIND_NAMES: Mapping[str, str] = {
    "news2": "NEWS2 band", "single_parameter_3": "Single parameter scoring 3",
    "spo2_below_target": "SpO2 below target", "spo2_falling": "SpO2 falling",
    "trend": "Drift from own baseline", "threshold": "Threshold", "news2_rising": "NEWS2 rising",
}


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind.replace("_", " ").capitalize())


class EvidenceReadingOut(BaseModel):
    code: str
    measured_at: dt.datetime
    value: float
    device_id: str = ""


class ActiveSpanOut(BaseModel):
    """One stretch a finding was active: raised at ``start``; ``end`` None while active."""

    start: dt.datetime
    end: dt.datetime | None
    end_reason: str | None = Field(None, description="'cleared' or 'episode resolved'")


class FindingTraceOut(BaseModel):
    episode_id: int
    kind: str
    name: str
    severity: str
    summary: str
    active: bool
    first_at: dt.datetime
    cleared_at: dt.datetime | None
    spans: list[ActiveSpanOut]
    readings: list[EvidenceReadingOut] = Field(
        description="every reading the finding cited (raise, updates, latest firing, clear)")
    codes: list[str] = Field(description="the vital codes of those readings")


class BaselineOut(BaseModel):
    """A trend finding's learned baseline of one sign, as the method charts it."""

    episode_id: int
    code: str
    mean: float
    sd: float = Field(description="the SD learned from the patient's first readings")
    sd_used: float = Field(description="the SD the z-score divides by (floored)")
    z_limit: float = Field(description="the control limit, in SDs, for a two-sign finding")
    low: float = Field(description="mean - z_limit x sd_used")
    high: float = Field(description="mean + z_limit x sd_used")
    direction: int = Field(description="+1: higher is worse; -1: lower is worse; 0: unknown")
    n: int | None = None
    learned_from: dt.datetime | None = None
    learned_to: dt.datetime | None = None
    level: float | None = None
    z: float | None = None
    flagged: bool = False
    finding_first_at: dt.datetime
    finding_cleared_at: dt.datetime | None


class ChartEvidenceOut(BaseModel):
    findings: list[FindingTraceOut]
    baselines: dict[str, BaselineOut] = Field(
        description="per vital code, the most recent trend finding's baseline in the window")


def _when(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _readings(items: object) -> list[EvidenceReadingOut]:
    """The well-formed readings of a stored evidence list (a malformed item is skipped)."""
    out: list[EvidenceReadingOut] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        at, value, code = _when(item.get("measured_at")), _number(item.get("value")), \
            item.get("code")
        if at is None or value is None or not isinstance(code, str):
            continue
        out.append(EvidenceReadingOut(code=code, measured_at=at, value=value,
                                      device_id=str(item.get("device_id", ""))))
    return out


def _spans(starts: Iterable[dt.datetime], ends: Iterable[dt.datetime], *, first_at: dt.datetime,
           cleared_at: dt.datetime | None, resolved_at: dt.datetime | None
           ) -> list[ActiveSpanOut]:
    """Pair raise and clear instants into active stretches (the finding row is the last)."""
    marks = sorted([(t, 0) for t in starts] + [(t, 1) for t in ends])
    if not any(kind == 0 for _, kind in marks):
        marks.insert(0, (first_at, 0))  # a finding stored before its events were (0070)
    spans: list[ActiveSpanOut] = []
    for at, kind in marks:
        if kind == 0 and (not spans or spans[-1].end is not None):
            spans.append(ActiveSpanOut(start=at, end=None))
        elif kind == 1 and spans and spans[-1].end is None:
            spans[-1] = ActiveSpanOut(start=spans[-1].start, end=at, end_reason="cleared")
    if spans and spans[-1].end is None:
        if cleared_at is not None:
            spans[-1] = ActiveSpanOut(start=spans[-1].start, end=cleared_at, end_reason="cleared")
        elif resolved_at is not None:
            spans[-1] = ActiveSpanOut(start=spans[-1].start, end=resolved_at,
                                      end_reason="episode resolved")
    return spans


def _baselines(episode_id: int, details: Mapping[str, Any], *, first_at: dt.datetime,
               cleared_at: dt.datetime | None) -> list[BaselineOut]:
    """The bands of a trend finding's ``details.charted`` (read by name; gaps skipped)."""
    charted = details.get("charted")
    flagged = details.get("flagged")
    flagged_codes = {c for c in flagged if isinstance(c, str)} if isinstance(flagged, list) \
        else set()
    z_limit = (_number(details.get("z_limit")) or _number(details.get("z_two"))
               or trend.Z_LIMIT)
    out = []
    for entry in charted if isinstance(charted, list) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("code"), str):
            continue
        code: str = entry["code"]
        mean, sd = _number(entry.get("baseline_mean")), _number(entry.get("baseline_sd"))
        if mean is None or sd is None:
            continue
        # The SD the method divides by: stored if the finding says so, else the learned SD
        # floored as alerting.trend floors it.
        sd_used = _number(entry.get("sd_used")) or max(sd, trend.SD_FLOOR.get(code, 0.0))
        if sd_used <= 0:
            continue
        n = _number(entry.get("baseline_n"))
        out.append(BaselineOut(
            episode_id=episode_id, code=code, mean=mean, sd=sd, sd_used=sd_used,
            z_limit=z_limit, low=mean - z_limit * sd_used, high=mean + z_limit * sd_used,
            direction=trend.DIRECTION.get(code, 0), n=int(n) if n is not None else None,
            learned_from=_when(entry.get("learned_from")),
            learned_to=_when(entry.get("learned_to")), level=_number(entry.get("level")),
            z=_number(entry.get("z")), flagged=code in flagged_codes,
            finding_first_at=first_at, finding_cleared_at=cleared_at))
    return out


def chart_evidence(conn: Conn, patient_id: int, start: dt.datetime, end: dt.datetime
                   ) -> ChartEvidenceOut:
    """The findings of the patient's episodes that were open at some time in [start, end],
    with the readings each cited, and the trend baselines to draw (three queries)."""
    episodes: dict[int, dt.datetime | None] = dict(conn.execute(
        "SELECT id, resolved_at FROM alerts WHERE patient_id = %s AND raised_at <= %s "
        "AND (resolved_at IS NULL OR resolved_at >= %s) ORDER BY raised_at DESC, id DESC "
        "LIMIT %s", (patient_id, end, start, MAX_EPISODES)).fetchall())
    if not episodes:
        return ChartEvidenceOut(findings=[], baselines={})
    ids = list(episodes)
    starts: dict[tuple[int, str], list[dt.datetime]] = defaultdict(list)
    ends: dict[tuple[int, str], list[dt.datetime]] = defaultdict(list)
    cited: dict[tuple[int, str], list[EvidenceReadingOut]] = defaultdict(list)
    for aid, at, event, stored, evidence in conn.execute(
            "SELECT alert_id, at, event, detail, evidence FROM alert_events "
            "WHERE alert_id = ANY(%s) AND event IN ('raised', 'finding_raised', "
            "'finding_updated', 'finding_cleared') ORDER BY at, id", (ids,)):
        detail: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        if event == "raised":
            kinds = [k for k in detail.get("findings") or () if isinstance(k, str)]
            for opened in kinds:
                starts[aid, opened].append(at)
            if len(kinds) == 1:  # its evidence is the headline's: attributable when alone
                cited[aid, kinds[0]] += _readings(evidence)
            continue
        named = detail.get("finding")
        if not isinstance(named, str):
            continue
        cited[aid, named] += _readings(evidence)
        if event == "finding_raised":
            starts[aid, named].append(at)
        elif event == "finding_cleared":
            ends[aid, named].append(at)
    findings: list[FindingTraceOut] = []
    baselines: dict[str, BaselineOut] = {}
    for (aid, kind, severity, summary, details, evidence, first_at,
         cleared_at) in conn.execute(
            "SELECT alert_id, kind, severity, summary, details, evidence, first_at, cleared_at "
            "FROM alert_findings WHERE alert_id = ANY(%s) ORDER BY first_at, kind", (ids,)):
        key = (aid, kind)
        unique = {(r.code, r.measured_at, r.device_id): r
                  for r in [*cited[key], *_readings(evidence)]}
        readings = sorted(unique.values(), key=lambda r: (r.measured_at, r.code),
                          reverse=True)[:MAX_READINGS][::-1]
        spans = _spans(starts[key], ends[key], first_at=first_at, cleared_at=cleared_at,
                       resolved_at=episodes[aid])
        if not any(s.start <= end and (s.end is None or s.end >= start) for s in spans):
            continue
        findings.append(FindingTraceOut(
            episode_id=aid, kind=kind, name=kind_name(kind), severity=severity,
            summary=summary, active=cleared_at is None and episodes[aid] is None,
            first_at=first_at, cleared_at=cleared_at, spans=spans, readings=readings,
            codes=sorted({r.code for r in readings})))
        if kind == Kind.TREND.value and isinstance(details, Mapping):
            for band in _baselines(aid, details, first_at=first_at, cleared_at=cleared_at):
                known = baselines.get(band.code)
                if known is None or band.finding_first_at >= known.finding_first_at:
                    baselines[band.code] = band
    return ChartEvidenceOut(findings=findings, baselines=baselines)


def for_code(evidence: ChartEvidenceOut, code: str) -> tuple[BaselineOut | None,
                                                            Sequence[FindingTraceOut]]:
    """What the chart of ``code`` draws: its baseline band and the findings citing it."""
    return evidence.baselines.get(code), [f for f in evidence.findings if code in f.codes]
