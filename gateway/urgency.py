"""The gateway's pre-screen: could this reading raise or escalate an alert? (issue 14)

A patient whose batch carries such a reading is queued as urgent (ward.db.alerting_queue):
the evaluator takes it first and at once, instead of after its coalescing hold
(alerting.pass_plan). The screen is a NEWS2 sub-score above 0 for the reading's own
parameter: a reading scoring 0 cannot by itself raise a NEWS2 band (the total is a sum of
sub-scores), so normal readings, the bulk of the traffic, wait the hold.

Every parameter a message can carry is scored the way the evaluator scores it — one rule,
not two: the chart tables of :mod:`alerting.news2` (Chart 1) and the reading-to-parameter
conversions of :mod:`alerting.observations` (``oxygen_of``, ``acvpu_of``), the same ones
``observations.build`` uses; a test holds the two equal value by value. So:

* **consciousness** (the ACVPU ordinal): Alert scores 0; new Confusion, Voice, Pain or
  Unresponsive score 3 (RCP NEWS2 2017, Chart 1) — red, urgent at once;
* **on_oxygen** (supplemental oxygen): 2 points (air/oxygen is its own parameter, never a 3);
* respiration rate, systolic BP, pulse and temperature from their rows;
* **SpO2**: the patient's scale is not known here, so any scale's bands count
  (conservative): scale 1 and scale 2 on air (scale 2 *on oxygen* scores SpO2 ≥ 93 %, so
  SpO2 on oxygen would always be urgent; the gateway sees the value alone).

Codes NEWS2 does not score (``o2_flow`` — the evaluator reads air/oxygen from ``on_oxygen``
only —, device rules, trends, care-plan limits) are not urgent: they are evaluated after the
hold, at most `alerting.pass_plan` hold later, which is still far sooner than before issue 14.
A value the scorer refuses (not finite, an ACVPU ordinal out of range) scores :data:`RED`:
look at once.

Pure: no I/O.
"""

from __future__ import annotations

import functools

from alerting.news2 import (
    AIR_OR_OXYGEN_POINTS,
    BANDS,
    CONSCIOUSNESS_POINTS,
    SPO2_BANDS,
    News2Error,
    Parameter,
    points_in,
    quantise,
)
from alerting.observations import acvpu_of, oxygen_of

_SCORED = {p.value: p for p in BANDS}
_SPO2 = Parameter.SPO2.value
_OXYGEN = "on_oxygen"  # alerting.rules.PARAMETER_CODE[Parameter.AIR_OR_OXYGEN]
_CONSCIOUSNESS = Parameter.CONSCIOUSNESS.value


RED = 3  # a single-parameter red: raises an alert by itself (alerting.rules.news2_rule)


# Readings repeat a few values per code (whole beats, breaths, percent): the answer for one is
# remembered. Scoring an SpO2 took 4.4 µs (every scale's bands), pulse 1.6 µs: 1–2 ms of the
# ingest thread per batch of 500 readings, measured (issue 14); a remembered one ~0.1 µs.
SCORES_REMEMBERED = 4096


@functools.lru_cache(maxsize=SCORES_REMEMBERED)
def sub_score(code: str, value: float) -> int:
    """The NEWS2 points a reading of `code` with `value` scores by itself (see module doc):
    0 for a code NEWS2 does not score, RED for a value the scorer refuses (look at once)."""
    try:
        parameter = _SCORED.get(code)
        if parameter is not None:
            return points_in(BANDS[parameter], quantise(parameter, value))
        if code == _SPO2:
            q = quantise(Parameter.SPO2, value)
            return max(points_in(bands, q) for (_scale, oxygen), bands in SPO2_BANDS.items()
                       if not oxygen)
        if code == _CONSCIOUSNESS:
            return CONSCIOUSNESS_POINTS[acvpu_of(value)]
        if code == _OXYGEN:
            return AIR_OR_OXYGEN_POINTS[oxygen_of(value)]
        return 0
    except (News2Error, ValueError, IndexError, OverflowError):
        return RED


def could_alert(code: str, value: float) -> bool:
    """True when the reading scores above 0: it could tip the patient's total."""
    return sub_score(code, value) > 0
