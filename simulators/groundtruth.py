"""Ground truth: what really happened in a simulated ward, as JSON lines.

Tests and `vward replay` compare what the platform saw with what the simulator knows: when each
deterioration began, the true vitals (so the true NEWS2 can be computed), when the true NEWS2
crossed 5 and 7, and which messages were malformed, duplicated, delayed, buffered offline,
dropped or stamped by a wrong clock. The format is the one agreed in `docs/architecture.md`
("Simulator ground truth"): every line has `event`, `at` (simulated instant, RFC 3339 UTC) and,
for patient events, `patient_key` (the patient's NHS number, which replay matches against the
database; `patient_id` is added when the ward was registered) and `patient_label`.

The NEWS2 scorer is *injected* (`scorer`): simulators may not import the alerting core, so
`vward simulate` (which may) passes `alerting.news2` in. Without a scorer the true vitals are
still written, and crossings can be computed from them afterwards.

Events: `scenario`, `patient`, `device`, `deterioration_start`, `true_vitals`,
`news2_crossed_5`, `news2_crossed_7`, and one per faulted message: `malformed`, `duplicate`,
`late`, `out_of_order`, `store_and_forward`, `dropped`, `clock_drift` (per device),
`future_timestamp` (per message expected to be rejected), `battery_flat`, `offline`, `artefact`;
finally `summary` with the counts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from simulators.physiology import TrueState

# (true state, SpO2 scale) → the true NEWS2 total.
Scorer = Callable[[TrueState, int], int]
Sink = Callable[[str], None]

# NEWS2 Chart 2: 5 is the key threshold for an urgent response, 7 for an emergency one.
THRESHOLDS = (5, 7)


def instant(at: float | dt.datetime) -> str:
    """Epoch seconds or an aware datetime → RFC 3339 UTC with `Z` (milliseconds at most)."""
    when = at if isinstance(at, dt.datetime) else dt.datetime.fromtimestamp(at, dt.UTC)
    when = when.astimezone(dt.UTC)
    text = when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class GroundTruth:
    """Collects ground-truth events; writes each as one JSON line to `sink` (if any)."""

    def __init__(
        self,
        sink: Sink | None = None,
        *,
        scorer: Scorer | None = None,
        patient_ids: dict[str, int] | None = None,
        keep: bool = False,
    ) -> None:
        self._sink = sink
        self._scorer = scorer
        self._patient_ids = patient_ids or {}
        self._last_total: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.events: list[dict[str, Any]] | None = [] if keep else None

    @classmethod
    def to_file(cls, stream: IO[str], **kwargs: Any) -> GroundTruth:
        def write(line: str) -> None:
            stream.write(line)
            stream.write("\n")

        return cls(write, **kwargs)

    def record(self, event: str, at: float | dt.datetime, **fields: Any) -> None:
        body: dict[str, Any] = {"event": event, "at": instant(at)}
        key = fields.get("patient_key")
        if key is not None and key in self._patient_ids:
            body["patient_id"] = self._patient_ids[key]
        body.update(fields)
        self.counts[event] += 1
        if self.events is not None:
            self.events.append(body)
        if self._sink is not None:
            self._sink(json.dumps(body, separators=(",", ":"), sort_keys=False))

    def true_vitals(self, patient_key: str, label: str, state: TrueState, spo2_scale: int) -> None:
        """Record a sample of the true state; with a scorer, also each upward crossing."""
        fields: dict[str, Any] = {
            "patient_key": patient_key, "patient_label": label,
            "spo2": round(state.spo2, 2), "pulse": round(state.pulse, 2),
            "resp_rate": round(state.resp_rate, 2), "temperature": round(state.temperature, 2),
            "systolic_bp": round(state.systolic_bp, 2), "diastolic_bp": round(state.diastolic_bp, 2),
            "on_oxygen": state.on_oxygen, "o2_flow": state.o2_flow,
            "consciousness": state.consciousness, "spo2_scale": spo2_scale,
            "progress": round(state.progress, 4),
        }
        total: int | None = None
        if self._scorer is not None:
            total = self._scorer(state, spo2_scale)
            fields["news2"] = total
        self.record("true_vitals", state.at, **fields)
        if total is None:
            return
        previous = self._last_total.get(patient_key)
        self._last_total[patient_key] = total
        for threshold in THRESHOLDS:
            if total >= threshold and (previous is None or previous < threshold):
                self.record(f"news2_crossed_{threshold}", state.at, patient_key=patient_key,
                            patient_label=label, news2=total, initial=previous is None)

    def summary(self, at: float | dt.datetime, **fields: Any) -> None:
        counts = {k: v for k, v in sorted(self.counts.items()) if k != "true_vitals"}
        self.record("summary", at, counts=counts, **fields)
