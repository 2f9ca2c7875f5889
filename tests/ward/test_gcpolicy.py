"""The services' collector setting (`ward.gcpolicy`): start-up heap frozen, young collections
after 50,000 net allocations, cyclic garbage still collected; the gateway applies it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from ward import gcpolicy

_PROBE = """
import gc, weakref
from ward import gcpolicy

frozen = gcpolicy.tune_for_service()
assert gc.get_threshold() == gcpolicy.THRESHOLDS, gc.get_threshold()
assert frozen == gc.get_freeze_count() > 1000, frozen
print(gcpolicy.describe(frozen))

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

# A cycle made once the service runs is garbage the collector still finds by itself (no
# gc.collect() here) once enough new objects are alive ...
gone = cycle()
held = [[i] for i in range(gcpolicy.THRESHOLDS[0] + 1000)]
assert gone() is None, "cyclic garbage was not collected"
# ... but short-lived objects freed by reference counting never trigger a collection.
kept = cycle()
for i in range(10 * gcpolicy.THRESHOLDS[0]):
    [i]
assert kept() is not None, "a young collection ran on allocations that were all freed"
print("ok")
"""


def test_tuned_collector_freezes_start_up_and_still_collects_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    young, middle, old = gcpolicy.THRESHOLDS
    assert f"start-up objects frozen, thresholds {young}/{middle}/{old}" in done.stdout
    assert done.stdout.strip().endswith("ok")


def test_gateway_runs_with_the_tuned_collector(
    broker: Any, ward: Any, start_gateway: Any,
) -> None:
    gw = start_gateway(ward.url, broker.url)
    young, middle, old = gcpolicy.THRESHOLDS
    assert f"start-up objects frozen, thresholds {young}/{middle}/{old}" in gw.log()
    assert gw.stop() == 0
