"""How the long-running services (gateway, alerting, evaluator, hub) set Python's cyclic
garbage collector: once started, their start-up heap is frozen and collections are rarer.

Measured (issue 14, 2026-12-07, 2-core machine): with CPython's defaults (700, 10, 10) the
alert evaluator (`benchmarks/bench_evaluator.py`, 300 patients × 60 passes) spent 2.7 s of
~10.7 s CPU in the collector — 2,557 young, 232 middle and 21 full collections, the full ones
up to 110 ms with every thread stopped — because a pass keeps each patient's readings window
alive (`alerting.store.SeriesCache`) and every young collection walked them; the gateway
spent ~13 % of its CPU there (430/39/3 collections over 60,000 messages, full ones to 31 ms);
the hub, full collections of 150–230 ms walking its start-up objects, stalling SSE events.

* **Freeze the start-up heap** (`gc.freeze`, Python ≥ 3.7; the approach Instagram described
  for its forked servers): modules, models, templates, the policy — alive as long as the
  process — are moved out of the collector's reach, so no collection walks them again.
* **Collect young objects after :data:`THRESHOLDS`\\[0] net allocations, not 700.** CPython
  counts tracked allocations *minus* deallocations, so a pass's short-lived objects (freed by
  reference counting) cancel out and only real growth triggers a collection: at 50,000 the
  evaluator ran 2 young collections in the run above (34 ms in all), CPU per evaluation
  0.61 → 0.37 ms, RSS unchanged (89 MiB). Cyclic garbage is still found — at most
  50,000 objects (a few MiB) later than before; the older generations keep CPython's own
  ratios and its rule that a full collection waits until a quarter of the long-lived heap is
  new.

Only cycles among the frozen start-up objects are never collected; they are never garbage
while the process runs.
"""

from __future__ import annotations

import gc
from typing import Final

#: (young, middle, old) collection thresholds for a service once it has started.
THRESHOLDS: Final = (50_000, 20, 10)


def tune_for_service() -> int:
    """Collect once, freeze what is alive (the start-up heap), set :data:`THRESHOLDS`; returns
    how many objects are frozen (for the start-up log line)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return gc.get_freeze_count()


def describe(frozen: int) -> str:
    """The start-up log's words for what :func:`tune_for_service` did."""
    young, middle, old = gc.get_threshold()
    return f"gc: {frozen:,} start-up objects frozen, thresholds {young}/{middle}/{old}"
