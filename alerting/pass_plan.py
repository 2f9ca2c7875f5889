"""Which waiting patients one evaluator pass evaluates, and which it puts back (issue 14).

A pass takes every waiting queue row, so a patient queued by many ingest batches is one
entry with its earliest receipt (full coalescing, whatever the pass size). It then evaluates
a bounded subset, so a pass stays short and a patient whose reading could raise an alert
waits at most about one pass for the evaluator to be free:

* red patients (a reading scoring 3: a single-parameter red raises an alert by itself)
  first, then the other urgent ones (their batch carried a reading the gateway's pre-screen,
  gateway.urgency, scored above 0: it could tip the total), at once, oldest receipt first.
  Red goes first because urgent readings are not rare (a 35.8 °C temperature scores 1): in
  bench_latency ~130 patients/s were urgent, about what the evaluator managed on a loaded
  machine, and a red reading waited behind them (p50 1.2 s);
* then the others whose earliest receipt is at least `hold_s` old, oldest first. Holding
  them is what keeps the evaluation count (and evaluator CPU) near that of unbounded passes:
  at 2,000 readings/s over 1,000 patients each patient gets a reading every 0.5 s, and
  evaluating it at every chance re-evaluates it ~4.6x as often (measured, issue 14 session
  5), which fell 108 s behind. Held, each patient is evaluated about once per `hold_s`.

The rest go back as one row. No backlog can grow: the leftover holds each patient once, so
at most the ward's size, and under overload the hold only lengthens (more coalescing).

Pure: no I/O; the clock is a parameter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Set


@dataclasses.dataclass(frozen=True, slots=True)
class PassPlan:
    evaluate: tuple[int, ...]  # sorted
    leftover: tuple[int, ...]  # sorted
    next_due: dt.datetime | None  # when the earliest held leftover patient becomes due


def plan_pass(receipts: Mapping[int, dt.datetime], urgent: Set[int], now: dt.datetime, *,
              budget: int, hold_s: float, red: Set[int] = frozenset()) -> PassPlan:
    """Up to `budget` patients: red, then urgent ones, then those due (receipt ≤ now -
    hold_s), each oldest first."""
    cutoff = now - dt.timedelta(seconds=hold_s)
    by_age = sorted(receipts, key=lambda pid: (receipts[pid], pid))
    chosen = [pid for pid in by_age if pid in red]
    chosen = (chosen + [pid for pid in by_age if pid in urgent and pid not in red])[:budget]
    if len(chosen) < budget:
        picked = set(chosen)
        chosen += [pid for pid in by_age if pid not in picked and receipts[pid] <= cutoff
                   ][:budget - len(chosen)]
    picked = set(chosen)
    leftover = [pid for pid in by_age if pid not in picked]
    held = [receipts[pid] for pid in leftover if pid not in urgent and receipts[pid] > cutoff]
    due = min(held) + dt.timedelta(seconds=hold_s) if held else None
    return PassPlan(tuple(sorted(chosen)), tuple(sorted(leftover)), due)


def next_budget(budget: int, patients: int, seconds: float, *, target_s: float,
                smallest: int, largest: int) -> int:
    """The next pass's patient budget from the last pass's cost: aim at `target_s` per pass.

    Smoothed (half-way towards the estimate) so one slow pass (a checkpoint, a busy CPU)
    does not collapse it; only a pass that filled its budget says much about the cost.
    """
    if patients <= 0 or seconds <= 0:
        return budget
    estimate = target_s * patients / seconds
    if patients < budget and estimate > budget:  # a small pass cannot show a larger budget
        return budget
    return max(smallest, min(largest, round((budget + estimate) / 2)))
