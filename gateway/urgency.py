"""The gateway's pre-screen: could this reading raise or escalate an alert? (issue 14)

A patient whose batch carries such a reading is queued as urgent (ward.db.alerting_queue):
the evaluator takes it first and at once, instead of after its coalescing hold
(alerting.pass_plan). The screen is a NEWS2 sub-score above 0 for the reading's own
parameter: a reading scoring 0 cannot by itself raise a NEWS2 band (the total is a sum of
sub-scores), so normal readings, the bulk of the traffic, wait the hold. For SpO2 the
patient's scale is not known here, so any scale's bands count (conservative: scale 2 on
oxygen scores SpO2 ≥ 93 %, so SpO2 on oxygen would always be urgent; the gateway only sees
the value, and scores it on scale 1 and scale 2 on air). Codes NEWS2 does not score (device
rules, trends, care-plan limits) are not urgent: they are evaluated after the hold, at most
`alerting.pass_plan` hold later, which is still far sooner than before issue 14.

Pure: no I/O.
"""

from __future__ import annotations

from alerting.news2 import (
    BANDS,
    SPO2_BANDS,
    News2Error,
    Parameter,
    points_in,
    quantise,
)

_SCORED = {p.value: p for p in BANDS}


RED = 3  # a single-parameter red: raises an alert by itself (alerting.rules.news2_rule)


def sub_score(code: str, value: float) -> int:
    """The NEWS2 points a reading of `code` with `value` scores by itself (see module doc):
    0 for a code NEWS2 does not score, RED for a value the scorer refuses (look at once)."""
    try:
        if code == Parameter.SPO2.value:
            q = quantise(Parameter.SPO2, value)
            return max(points_in(bands, q) for (_scale, oxygen), bands in SPO2_BANDS.items()
                       if not oxygen)
        parameter = _SCORED.get(code)
        if parameter is None:
            return 0
        return points_in(BANDS[parameter], quantise(parameter, value))
    except News2Error:
        return RED


def could_alert(code: str, value: float) -> bool:
    """True when the reading scores above 0: it could tip the patient's total."""
    return sub_score(code, value) > 0
