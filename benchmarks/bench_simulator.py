"""Load-mode throughput of the simulator: QoS 1 messages/s acknowledged by a real Mosquitto.

Run as ``python benchmarks/bench_simulator.py [SECONDS] [PROCESSES]`` from the repository root.
It starts its own Mosquitto with the project's development config (`ward.embedded`), publishes
the `load-10k` scenario (10,000 devices) flat out from PROCESSES processes (default 2) for
SECONDS (default 20) with the lean pipelined client, counting PUBACKs, then — for comparison —
one process publishing the same stream through paho-mqtt for 5 s. The figures include
generating every message (physiology, encoding, faults), not just sending pre-made bytes.
Not a test: figures depend on the machine and on what else it is doing.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

# Importable without installing the package: the repository root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulators.engine import Engine
from simulators.publisher import Publisher, run_load
from simulators.scenario import load
from ward.embedded import start_broker

PAHO_SECONDS = 5.0


def _paho_rate(url: str) -> float:
    scenario = load("load-10k")
    engine = Engine(scenario, start=dt.datetime.now(dt.UTC) - scenario.backfill)
    publisher = Publisher(url, client_id="bench-paho")
    stream = engine.messages()
    began = time.monotonic()
    while time.monotonic() - began < PAHO_SECONDS:
        for _ in range(256):
            publisher.publish(next(stream))
    publisher.flush(60)
    elapsed = time.monotonic() - began
    publisher.close()
    return publisher.acked / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    broker = start_broker()
    try:
        print(f"broker: {broker.kind} {broker.url} (project dev config)")
        result = run_load(load("load-10k"), broker.url, rate=0, processes=processes,
                          seconds=seconds, progress=None)
        print(f"load mode, {processes} process(es), load-10k, QoS 1: {result.acked:,} PUBACKs "
              f"in {result.seconds:.1f} s = {result.rate:,.0f} messages/s")
        print(f"paho-mqtt, 1 process, same stream, QoS 1: {_paho_rate(broker.url):,.0f} "
              "messages/s")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
