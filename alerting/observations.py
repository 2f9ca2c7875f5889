"""From the latest reading of each code to a NEWS2 :class:`~alerting.news2.Observations`.

A reading counts only while it still describes the patient: each parameter has a staleness
window, and a reading older than its window is **missing** — never normal — so the score is
partial and its total a lower bound. Readings dated slightly in the future (device clocks
drift; the gateway accepts up to 5 minutes ahead) count as fresh.

Staleness windows (why each):

* ``spo2``, ``pulse``, ``systolic_bp`` — **4 hours**. A home kit takes spot checks several
  times a day; 4 hours is the strict end of Chart 4's low-risk 4–6-hourly interval, so a patient
  observed as often as the chart asks at low risk always has a complete score between checks
  (a 1-hour window left most spot-check patients "partial" most of the day). A patient whose
  band asks for more frequent observations is caught by the *observations overdue* rule, which
  follows the band, not by this window: staleness only stops an old value being scored as
  current.
* ``resp_rate``, ``consciousness`` — **4 hours**. At home they usually come from a
  questionnaire or a nurse's call, not a device; 4 hours is the strict end of the low-risk
  4–6-hourly interval, so a value is still used within one low-risk observation cycle.
* ``temperature`` — **4 hours**: changes over hours, usually taken with the questionnaire.
* ``on_oxygen`` — **12 hours**: a prescription state rather than a measurement; 12 hours is the
  longest Chart 4 interval (total 0), so it is re-confirmed at least once per cycle.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from alerting.candidates import Evidence
from alerting.news2 import Consciousness, Observations
from ward.domain.vitals import ACVPU, VitalCode

STALENESS: Final[Mapping[VitalCode, dt.timedelta]] = MappingProxyType(
    {
        VitalCode.SPO2: dt.timedelta(hours=4),
        VitalCode.PULSE: dt.timedelta(hours=4),
        VitalCode.SYSTOLIC_BP: dt.timedelta(hours=4),
        VitalCode.RESP_RATE: dt.timedelta(hours=4),
        VitalCode.CONSCIOUSNESS: dt.timedelta(hours=4),
        VitalCode.TEMPERATURE: dt.timedelta(hours=4),
        VitalCode.ON_OXYGEN: dt.timedelta(hours=12),
    }
)
#: The codes NEWS2 is computed from (their latest reading time is "last observed").
NEWS2_CODES: Final = frozenset(STALENESS)
#: :data:`STALENESS` as (code text, window) pairs, in its order (enum lookups cost, issue 14).
_DEFAULT_WINDOWS: Final = tuple((c.value, w) for c, w in STALENESS.items())
_WINDOW_OF: Final[Mapping[str, dt.timedelta]] = MappingProxyType(dict(_DEFAULT_WINDOWS))


def evidence_order(e: Evidence) -> tuple[dt.datetime, str, str, float]:
    """Evidence's own order (``order=True`` compares these fields in this order) as a sort
    key: one tuple per item instead of two per comparison."""
    return (e.measured_at, e.code, e.device_id, e.value)


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest reading of one code for one patient (a row of ``latest_readings``)."""

    code: str
    measured_at: dt.datetime
    value: float
    device_id: str
    #: The same reading as :class:`Evidence`, built once: the rules asked for it ~20 times an
    #: evaluation, and a new frozen dataclass each time was a few % of a pass (issue 14).
    evidence: Evidence = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence",
                           Evidence(self.measured_at, self.code, self.device_id, self.value))

    def is_reading(self, measured_at: dt.datetime, value: float, device_id: str) -> bool:
        """This very reading again (same instant in the same zone object — psycopg shares one
        per server time zone — same value and device): a caller re-reading the latest rows
        may keep this object instead of building a new one (issue 14)."""
        return (self.measured_at == measured_at and self.measured_at.tzinfo is measured_at.tzinfo
                and self.value == value and self.device_id == device_id)


@dataclass(frozen=True, slots=True)
class ObservationSet:
    """Observations for NEWS2 plus what was used and what was left out."""

    observations: Observations
    used: tuple[Evidence, ...]  # the readings scored, oldest first
    stale: frozenset[str]  # codes with a reading that was too old to count


def oxygen_of(value: float) -> bool:
    """An ``on_oxygen`` reading as NEWS2's air/oxygen (0 = room air, 1 = supplemental oxygen):
    the one conversion, for :func:`build` and the gateway's pre-screen (``gateway.urgency``)."""
    return value >= 0.5


def acvpu_of(value: float) -> Consciousness:
    """A ``consciousness`` reading (the ACVPU ordinal 0..4) as ACVPU: the one conversion, for
    :func:`build` and ``gateway.urgency``. Out of range: IndexError; not a number: ValueError."""
    return Consciousness(ACVPU[int(value)])


def is_fresh(code: str, measured_at: dt.datetime, now: dt.datetime,
             staleness: Mapping[VitalCode, dt.timedelta] = STALENESS) -> bool:
    """True when a reading of ``code`` measured at ``measured_at`` still counts at ``now``."""
    window = _WINDOW_OF.get(code) if staleness is STALENESS else None
    if window is None:
        window = staleness.get(VitalCode(code))  # not a vital code: ValueError, as always
    return window is not None and now - measured_at <= window


def build(latest: Mapping[str, Latest], now: dt.datetime, *, spo2_scale: int = 1,
          staleness: Mapping[VitalCode, dt.timedelta] = STALENESS) -> ObservationSet:
    """Observations from the latest readings at ``now``; stale ones become missing."""
    fresh: dict[str, Latest] = {}
    stale: set[str] = set()
    for code, window in (_DEFAULT_WINDOWS if staleness is STALENESS
                         else [(c.value, w) for c, w in staleness.items()]):
        reading = latest.get(code)
        if reading is None:
            continue
        if now - reading.measured_at <= window:  # is_fresh
            fresh[code] = reading
        else:
            stale.add(code)

    def number(code: VitalCode) -> float | None:
        reading = fresh.get(code.value)
        return None if reading is None else reading.value

    oxygen = fresh.get(VitalCode.ON_OXYGEN.value)
    level = fresh.get(VitalCode.CONSCIOUSNESS.value)
    observations = Observations(
        resp_rate=number(VitalCode.RESP_RATE),
        spo2=number(VitalCode.SPO2),
        on_oxygen=None if oxygen is None else oxygen_of(oxygen.value),
        systolic_bp=number(VitalCode.SYSTOLIC_BP),
        pulse=number(VitalCode.PULSE),
        consciousness=None if level is None else acvpu_of(level.value),
        temperature=number(VitalCode.TEMPERATURE),
        spo2_scale=spo2_scale,
    )
    used = tuple(sorted([r.evidence for r in fresh.values()], key=evidence_order))
    return ObservationSet(observations, used, frozenset(stale))
