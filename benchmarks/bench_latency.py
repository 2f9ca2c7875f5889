"""Device-to-clinician latency at a fixed publish rate: publish → alert committed, publish →
the changed ward row pushed to a hub client (issue 14).

Usage:
    python benchmarks/bench_latency.py [--rate 2000] [--seconds 30] [--devices 1000]
        [--probes 100] [--alert-probes 300] [--bench-dir ../shared/bench]

Everything runs as it does in production, each in its own process: Mosquitto (the project's
development config, `ward.embedded.start_broker`), `vward gateway` (alerting on: it queues
patients), `vward alerting` (evaluator + scheduler + notifier) and `vward hub`; the load
generator is the reference harness's raw-socket QoS 1 publisher (`../shared/bench/pubgen.py`,
imported, cheap in CPU) in this process, one reading per message, in a throwaway schema of
the machine's PostgreSQL with 1,000 admitted patients, each wearing one device.

Three kinds of device share the `--rate` (measured_at is stamped with the publish instant):
* load devices: normal values in rotation (spo2, pulse, resp_rate, temperature, systolic_bp),
  the bulk of the rate;
* SSE probes (`--probes`): normal values, one message a second each, so a probe has one
  reading in flight at a time and the first `readings` SSE event naming its patient after a
  publish is that reading's (exact attribution without touching the gateway's events);
* alert probes (`--alert-probes`, load devices too): each publishes once, at a moment spread
  over the run, a systolic of 85 mm Hg (NEWS2 sub-score 3: a single-parameter red score),
  which must raise or escalate its patient's episode.

Measured:
(a) publish → alert committed: an alert probe's trigger publish → the first `alert`
    NOTIFY for its patient heard on `vw_events` by a LISTEN connection here (sent at commit);
(b) publish → SSE event: a probe's publish → the `readings` event naming its patient on the
    hub's `/api/events` stream (an HTTP SSE client, as the browser's EventSource);
(c) publish → row fetched: (b) plus the fetch of that row (`/api/ward?patient_id=`, or with
    `--fetch html` the page's own `/ward/rows?patient_id=` fragment) showing the new value, as the browser's page does next (the client fetches every row the events
    name, as the page does, so the hub carries a browser's real load);
(d) publish → alert pushed: an alert probe's trigger → the hub's `alert` SSE event for it.
Printed as p50/p95/p99/max with the achieved publish rate and the machine's load average.
Not a test: figures depend on the machine; compare runs of one invocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ward.db import channels  # noqa: E402
from ward.db.connect import create_schema, drop_schema, migrate_url, with_schema  # noqa: E402
from ward.domain.nhs_number import with_check_digit  # noqa: E402
from ward.embedded import free_port, start_broker, wait_for_port  # noqa: E402
from ward.hub.auth import Role, create_user  # noqa: E402

NORMAL = (("spo2", "%", 97.0), ("pulse", "/min", 72.0), ("resp_rate", "/min", 16.0),
          ("temperature", "Cel", 36.8), ("systolic_bp", "mm[Hg]", 124.0))
# Systolic 85 mm Hg scores 3 (<= 90): a red single parameter, whatever else is missing. Not
# SpO2: a lone low SpO2 is median-filtered (wearable) or doubted as a probe artefact (spot) by
# alerting.artefacts, on purpose; blood pressure is neither, so its first reading must raise.
TRIGGER = ("systolic_bp", "mm[Hg]", 85.0)


# A ward row of the /ward/rows fragment: its patient and data-last (the newest observation,
# epoch seconds).
ROW_LAST = re.compile(r'<tr id="p-(\d+)"[^>]*?data-last="(-?\d+)"')


def shows(latest: dict[str, str], t_pub: float, stamp: dt.datetime) -> bool:
    """Whether a fetched row shows the reading published at `t_pub` (measured at `stamp`).
    The fragment's data-last is whole seconds: a probe publishes once a second, so its row
    shows this reading once data-last reaches the publish's second."""
    if "last_s" in latest:
        return int(latest["last_s"]) >= int(t_pub)
    floor = stamp - dt.timedelta(microseconds=1)
    return any(dt.datetime.fromisoformat(v) >= floor for v in latest.values())


def _bench_dir(given: str | None) -> Path:
    for folder in ([Path(given)] if given else [REPO.parent / "shared" / "bench",
                                                REPO.parents[1] / "shared" / "bench"]):
        if (folder / "pubgen.py").exists():
            return folder
    sys.exit("reference harness (pubgen.py) not found: give --bench-dir")


def as_url(conninfo: str) -> str:
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = urllib.parse.urlencode({"options": p.get("options", "")}, quote_via=urllib.parse.quote)
    return (f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:"
            f"{p.get('port', 5432)}/{p.get('dbname', 'postgres')}?{query}")


def device_id(i: int) -> str:
    return f"lat-{i:05d}"


def setup(url: str, devices: int, now: dt.datetime) -> dict[str, int]:
    """Admitted patients each wearing one device; returns device id → patient id."""
    since = now - dt.timedelta(days=1)
    numbers = [n for n in (with_check_digit(f"{900000000 + k:09d}") for k in range(3 * devices))
               if n][:devices]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
            "SELECT n, 'Latency', 'lat-' || lpad((g - 1)::text, 5, '0'), date '1950-01-01' "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS u(n, g)", (numbers,))
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "decided_at, admitted_at) SELECT id, 'step_up', 'gp', 'admitted', %s, %s, %s "
            "FROM patients", (since, since, since))
        conn.execute("INSERT INTO devices (id, kind) SELECT family_name, 'home_hub' FROM patients")
        conn.execute("INSERT INTO device_assignments (device_pk, patient_id, during) "
                     "SELECT d.pk, p.id, tstzrange(%s, NULL) FROM patients p "
                     "JOIN devices d ON d.id = p.family_name", (since,))
        conn.execute("SELECT vw_ensure_reading_partition(%s)", (now,))
        create_user(conn, "bench", "bench-password", role=Role.HUB_NURSE)
        conn.execute("ANALYZE")
        return {d: p for p, d in conn.execute("SELECT id, family_name FROM patients")}


class Plan:
    """Which device sends what as message i (pure: the same schedule whatever the timing)."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.n = int(a.rate * a.seconds)
        self.probes, self.devices = a.probes, a.devices
        # Each probe once a second: 1 message in `every` is a probe's.
        self.every = max(2, round(a.rate / max(a.probes, 1))) if a.probes else 0
        self.load = list(range(a.probes, a.devices))
        n_load = self.n - (self.n // self.every if self.every else 0)
        rounds = max(n_load // len(self.load), 6)
        # Alert probe k fires in round 2 + k*(rounds-4)/count: spread over the run.
        count = min(a.alert_probes, len(self.load))
        self.trigger_round = {self.load[k]: 2 + k * (rounds - 4) // max(count, 1)
                              for k in range(count)}
        self.sent_probe: list[tuple[int, int]] = []  # (message index, device)
        self.sent_trigger: list[tuple[int, int]] = []
        self._j = 0

    def message(self, i: int) -> tuple[int, tuple[str, str, float]]:
        if self.every and i % self.every == 0:
            device = (i // self.every) % self.probes
            self.sent_probe.append((i, device))
            code, unit, base = NORMAL[(i // self.every // self.probes) % len(NORMAL)]
            return device, (code, unit, base + (i % 3) - 1)
        j = self._j
        self._j += 1
        device = self.load[j % len(self.load)]
        rnd = j // len(self.load)
        if self.trigger_round.get(device) == rnd:
            self.sent_trigger.append((i, device))
            return device, TRIGGER
        code, unit, base = NORMAL[rnd % len(NORMAL)]
        return device, (code, unit, base + (rnd % 3) - 1)


def publisher(bench: Path, port: int, plan: Plan, rate: float, times: array) -> dict[str, Any]:
    sys.path.insert(0, str(bench))
    import pubgen  # type: ignore[import-not-found]

    topics = [f"vw/v1/devices/{device_id(d)}/readings".encode() for d in range(plan.devices)]
    run = uuid.uuid4().hex[:6]

    def msgs(i: int, iso: str) -> tuple[bytes, bytes]:
        device, (code, unit, value) = plan.message(i)
        body = (f'{{"msg_id": "{run}-{i}", "sent_at": "{iso}", "readings": [{{"code": '
                f'"{code}", "value": {value:g}, "unit": "{unit}", "measured_at": "{iso}"}}]}}')
        return topics[device], body.encode()

    pub = pubgen.RawPublisher("127.0.0.1", port, f"latpub-{run}", 1, 10_000)
    result: dict[str, Any] = pub.run(msgs, plan.n, rate, times)
    return result


class Listener(threading.Thread):
    """`vw_events` heard on the database (sent at commit): every `alert` notification, and
    the gateway's `readings` ones for the probes' patients."""

    def __init__(self, url: str, probe_pids: set[int]) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        channels.listen(self.conn, channels.EVENTS)
        self.probe_pids = probe_pids
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self.readings: dict[int, list[float]] = defaultdict(list)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for note in self.conn.notifies(timeout=0.5):
                t = time.time()
                data = json.loads(note.payload)
                if data.get("type") == "alert":
                    self.alerts.append((t, data))
                elif data.get("type") == "readings":
                    for pid in data.get("patient_ids", ()):
                        if pid in self.probe_pids:
                            self.readings[pid].append(t)


class SseClient(threading.Thread):
    """The hub's `/api/events` as a browser's EventSource, and the page's row fetches."""

    def __init__(self, base: str, token: str, probe_pids: set[int], *, html: bool = False
                 ) -> None:
        super().__init__(daemon=True)
        self.base, self.headers = base, {"Authorization": f"Bearer {token}"}
        self.probe_pids = probe_pids
        self.html = html  # fetch the page's fragment (/ward/rows) instead of /api/ward
        self.events: list[tuple[float, str, tuple[int, ...]]] = []
        # (fetched, pid, code→at, the request's start); from HTML: {"last_s": data-last}
        self.rows: list[tuple[float, int, dict[str, str], float]] = []
        self.fetches = 0
        self.requests: list[tuple[float, int]] = []  # (duration s, patients asked for)
        self.open = threading.Event()
        self.done = threading.Event()
        self._fetch: queue.Queue[int | None] = queue.Queue()
        self._fetcher = threading.Thread(target=self._fetch_rows, daemon=True)

    def run(self) -> None:
        self._fetcher.start()
        with httpx.Client(base_url=self.base, headers=self.headers,
                          timeout=httpx.Timeout(10, read=None)) as client, \
                client.stream("GET", "/api/events") as stream:
            self.open.set()
            for line in stream.iter_lines():
                if self.done.is_set():
                    break
                if not line.startswith("data: "):
                    continue
                t = time.time()
                data = json.loads(line[6:])
                pids = tuple(data.get("patient_ids", ()))
                self.events.append((t, data.get("type", ""), pids))
                for pid in pids:
                    self._fetch.put(pid)
        self._fetch.put(None)

    def _fetch_rows(self) -> None:
        """As hub.js does: fetch the rows every event named (all of them, not only the
        probes': that is the hub's real load), one request per ≤ 500 ids, each request
        covering whatever was named while the previous one ran."""
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=60) as api:
            while (pid := self._fetch.get()) is not None:
                pids = {pid}
                while not self._fetch.empty():
                    more = self._fetch.get()
                    if more is None:
                        return
                    pids.add(more)
                ordered = sorted(pids)
                for start in range(0, len(ordered), 500):
                    t0 = time.time()
                    try:
                        response = api.get(
                            "/ward/rows" if self.html else "/api/ward",
                            params={"patient_id": ordered[start:start + 500]},
                            headers={"Accept": "text/html"} if self.html else None)
                    except httpx.HTTPError:
                        return  # the hub stopped at the end of the run
                    t = time.time()
                    self.fetches += 1
                    self.requests.append((t - t0, len(ordered[start:start + 500])))
                    if response.status_code != 200:
                        continue
                    if self.html:
                        for pid_s, last in ROW_LAST.findall(response.text):
                            if int(pid_s) in self.probe_pids:
                                self.rows.append((t, int(pid_s), {"last_s": last}, t0))
                        continue
                    for row in response.json()["rows"]:
                        if row["patient_id"] in self.probe_pids:
                            self.rows.append((t, row["patient_id"], {
                                code: v["measured_at"] for code, v in row["latest"].items()},
                                t0))


def cpu_by_pid() -> dict[int, tuple[int, float]]:
    """pid → (process group, user + system CPU seconds) of every process now."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command: state ppid pgrp … utime(14) stime(15), 1-based over the full line
        out[int(pid)] = (int(fields[2]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_report(procs: dict[str, subprocess.Popen[bytes]], logs: Path, patients: int,
               rows_fetched: int = 0) -> str:
    """CPU seconds per role over the run (each role's process group); the evaluator child
    separately when it runs in one (its pid is in the log); the hub's per row the client
    fetched (its SSE stream and start-up included: an upper bound of a pushed row's cost)."""
    now = cpu_by_pid()
    parts = []
    child = None
    found = re.findall(r"evaluator process started pid=(\d+)", (logs / "alerting.log").read_text(
        errors="replace"))
    if found:
        child = int(found[-1])
    for role, proc in procs.items():
        total = sum(c for pg, c in now.values() if pg == proc.pid)
        if role == "alerting" and child is not None and child in now:
            evaluator = now[child][1]
            parts.append(f"alerting {total - evaluator:.1f} s + its evaluator {evaluator:.1f} s "
                         f"({1000 * evaluator / max(patients, 1):.2f} ms per patient evaluated)")
        elif role == "alerting":
            parts.append(f"alerting (evaluator thread inside) {total:.1f} s "
                         f"({1000 * total / max(patients, 1):.2f} ms per patient evaluated, "
                         "sweeps included)")
        elif role == "hub" and rows_fetched:
            parts.append(f"hub {total:.1f} s ({1000 * total / rows_fetched:.2f} ms per row "
                         f"fetched, {rows_fetched:,} rows)")
        else:
            parts.append(f"{role} {total:.1f} s")
    return "CPU: " + ", ".join(parts)


def evaluated(logs: Path) -> tuple[int, list[float]]:
    """Patients evaluated and pass durations (s, from consecutive pass lines) in the log."""
    text = (logs / "alerting.log").read_text(errors="replace")
    passes = re.findall(r"^(\S+ \S+) .*alerting pass patients=(\d+)", text, re.MULTILINE)
    patients = sum(int(n) for _, n in passes)
    times = [dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.UTC)
             for t, _ in passes]
    return patients, [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(label: str, ms: list[float], expected: int) -> str:
    if not ms:
        return f"{label}: no samples (of {expected})"
    return (f"{label}: p50 {pct(ms, 50):7.0f} ms  p95 {pct(ms, 95):7.0f} ms  p99 "
            f"{pct(ms, 99):7.0f} ms  max {max(ms):7.0f} ms  (n={len(ms)} of {expected})")


def match_first_after(sent: list[tuple[float, int]], heard: dict[int, list[float]]
                      ) -> list[tuple[float, int, float]]:
    """Per patient, in order: each send takes the first unused event after it;
    (publish time, patient, event time) per matched send."""
    out: list[tuple[float, int, float]] = []
    used: dict[int, int] = defaultdict(int)
    for t_pub, pid in sorted(sent):
        times = heard.get(pid, [])
        k = used[pid]
        while k < len(times) and times[k] < t_pub:
            k += 1
        if k < len(times):
            out.append((t_pub, pid, times[k]))
            k += 1
        used[pid] = k
    return out


def received(url: str, devices: list[str], where: str = "") -> dict[tuple[str, int], float]:
    """(device, measured_at in µs) → the gateway's receipt (epoch s) of those readings."""
    with psycopg.connect(url) as conn:
        return {(d, round(m.timestamp() * 1e6)): r.timestamp() for d, m, r in conn.execute(
            "SELECT device_id, measured_at, received_at FROM readings WHERE device_id = ANY(%s)"
            + where, (devices,))}


def settle(url: str, n: int, stall_s: float = 30.0) -> float:
    """Wait until the gateway stored all `n` readings and the evaluator emptied its queue (or
    nothing moved for `stall_s`): the tails must be in the figures, not cut off."""
    started = last_move = time.monotonic()
    before = (-1, -1)
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - last_move < stall_s:
            stored = conn.execute("SELECT count(*) FROM readings").fetchone()
            queued = conn.execute("SELECT count(*) FROM alerting_queue").fetchone()
            now = (stored[0] if stored else 0, queued[0] if queued else 0)
            if now[0] >= n and now[1] == 0:
                break
            if now != before:
                before, last_move = now, time.monotonic()
            time.sleep(0.2)
    time.sleep(2.0)  # the last notifications reach the listeners
    return time.monotonic() - started


def split(label: str, matched: list[tuple[float, int, float]], expected: int,
          receipt: dict[tuple[str, int], float], device_of: dict[int, str]) -> None:
    """The end-to-end figure, then publish → gateway receipt and receipt → event."""
    print(summary(label, [(e - p) * 1000 for p, _, e in matched], expected))
    ins, outs = [], []
    for p, pid, e in matched:
        r = receipt.get((device_of[pid], round(p * 1e6)))
        if r is not None:
            ins.append((r - p) * 1000)
            outs.append((e - r) * 1000)
    print(summary("      publish → gateway receipt", ins, len(matched)))
    print(summary("      gateway receipt → event  ", outs, len(matched)))


PASS_LINE = re.compile(r"alerting pass patients=(\d+) .*?seconds=([\d.]+) lock_ms=([\d.]+) "
                       r"hook_ms=([\d.]+) settle_ms=([\d.]+) commit_ms=([\d.]+) "
                       r"started=([\d.]+) red=([\d,]*)")


def breakdown(logs: Path, trig_at: list[tuple[float, int, float]],
              alert_at: dict[tuple[int, float], float]) -> None:
    """Reading committed → alert committed, split at the evaluator's pass that took the
    trigger's patient (its log line: start instant, phases, red patients): waiting for the
    pass in flight, the wake-up, the pass itself. Needs a checkout whose pass log names them."""
    # findall's groups: patients, seconds, lock, hook, settle, commit, started, red
    passes = [(float(m[6]), float(m[1]), int(m[0]), float(m[2]), float(m[3]),
               {int(x) for x in m[7].split(",") if x})
              for m in PASS_LINE.findall((logs / "alerting.log").read_text(errors="replace"))]
    if not passes:
        print("      (no per-pass red patients in the alerting log: no breakdown)")
        return
    passes.sort()
    busy, wake, own, size, lock, hook = [], [], [], [], [], []
    rows = []
    for p, pid, c in trig_at:
        a = alert_at.get((pid, p))
        if a is None:
            continue
        k = next((k for k, ps in enumerate(passes) if pid in ps[5] and ps[0] >= p), None)
        if k is None:
            continue
        start, _, n, lock_ms, hook_ms, _ = passes[k]
        prev_end = passes[k - 1][0] + passes[k - 1][1] if k else start
        b = max(0.0, min(start, prev_end) - c)
        busy.append(b * 1000)
        wake.append((start - c) * 1000 - b * 1000)
        own.append((a - start) * 1000)
        size.append(float(n))
        lock.append(lock_ms)
        hook.append(hook_ms)
        rows.append(((a - c) * 1000, b * 1000, (start - c) * 1000 - b * 1000,
                     (a - start) * 1000, n, lock_ms, hook_ms))
    if not rows:
        print("      (no trigger's pass found in the alerting log: no breakdown)")
        return
    print(summary("        commit → pass start: the pass in flight", busy, len(trig_at)))
    print(summary("        commit → pass start: the rest (wake-up)", wake, len(trig_at)))
    print(summary("        pass start → alert committed (its pass)", own, len(trig_at)))
    print(summary("        its pass: lock_ms", lock, len(trig_at)))
    print(summary("        its pass: hook_ms", hook, len(trig_at)))
    print(f"        its pass: patients p50 {pct(size, 50):.0f}, p95 {pct(size, 95):.0f}, "
          f"max {max(size):.0f}")
    rows.sort(reverse=True)
    print("        slowest (total, in flight, wake, own pass ms, patients, lock ms, hook ms): "
          + "; ".join(f"{t:.0f}/{b:.0f}/{w:.0f}/{o:.0f}/{n}/{lk:.0f}/{h:.0f}"
                      for t, b, w, o, n, lk, h in rows[:8]))


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=env["PYTHONPATH"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_log(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    sys.exit(f"{log.name}: {text!r} not seen in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="messages/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--alert-probes", type=int, default=300)
    parser.add_argument("--bench-dir")
    parser.add_argument("--fetch", choices=("api", "html"), default="api",
                        help="(c) fetches rows as /api/ward JSON (default) or as the ward page "
                        "does, the /ward/rows HTML fragment")
    parser.add_argument("--keep-schema", action="store_true", help="do not drop the schema")
    parser.add_argument("--code", action="append", type=Path,
                        help="a checkout whose gateway, alerting and hub run (repeat to compare "
                        "checkouts in one invocation, e.g. a `git worktree` of main; default: "
                        "this one)")
    a = parser.parse_args()
    for code in a.code or [REPO]:
        print(f"--- code under test: {code.resolve()}", flush=True)
        run(a, code.resolve())
    return 0


def run(a: argparse.Namespace, code: Path) -> None:  # noqa: PLR0915 - one linear script
    bench = _bench_dir(a.bench_dir)
    base_url = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_lat_{uuid.uuid4().hex[:8]}"
    create_schema(base_url, schema)
    url = as_url(with_schema(base_url, schema))
    broker = start_broker()
    logs = Path(tempfile.mkdtemp(prefix=f"{schema}-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        migrate_url(url)
        now = dt.datetime.now(dt.UTC)
        pids = setup(url, a.devices, now)
        port = free_port()
        env = {**os.environ, "VW_DATABASE_URL": url, "VW_MQTT_URL": broker.url,
               "VW_MQTT_CLIENT_ID": f"gw-{schema}", "VW_MQTT_SHARE_GROUP": "",
               "VW_GATEWAY_ALERTING": "true", "VW_LOG_LEVEL": "INFO",
               "VW_WARD_BEDS": str(a.devices), "PYTHONPATH": str(code)}
        py = sys.executable
        procs["gateway"] = _start([py, "-m", "ward.cli", "gateway"], env, logs / "gateway.log")
        procs["alerting"] = _start([py, "-m", "ward.cli", "alerting", "--policy",
                             str(code / "deploy/escalation/default.yaml")],
                                   {**env, "VW_LOG_LEVEL": "DEBUG"}, logs / "alerting.log")
        procs["hub"] = _start([py, "-m", "ward.cli", "hub", "--host", "127.0.0.1", "--port",
                               str(port)], env, logs / "hub.log")
        _wait_log(logs / "gateway.log", "subscribed")
        _wait_log(logs / "alerting.log", "evaluator listening")
        wait_for_port(port, 60)
        hub = f"http://127.0.0.1:{port}"
        token = httpx.post(hub + "/api/auth/token", json={
            "username": "bench", "password": "bench-password"}, timeout=30).json()["access_token"]
        probe_pids = {pids[device_id(d)] for d in range(a.probes)}
        sse = SseClient(hub, token, probe_pids, html=a.fetch == "html")
        sse.start()
        sse.open.wait(30)
        plan = Plan(a)
        trigger_pids = {pids[device_id(d)] for d in plan.trigger_round}
        listener = Listener(url, probe_pids | trigger_pids)
        listener.start()
        # The ward cache's first full load, before the clock starts.
        httpx.get(hub + "/api/ward", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        time.sleep(1.0)
        times: array = array("d")
        load_before = os.getloadavg()
        result = publisher(bench, broker.port, plan, a.rate, times)
        load_after = os.getloadavg()
        waited = settle(url, plan.n)
        sse.done.set()
        listener.done.set()
        pub_s = result["t_last_call"] - result["t_start"]
        print(f"published {plan.n:,} QoS 1 messages of one reading from {a.devices} devices in "
              f"{pub_s:.1f} s ({plan.n / pub_s:,.0f} msg/s, target {a.rate:,.0f}); load average "
              f"before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), "
              f"{os.cpu_count()} CPUs; settled {waited:.0f} s after the last publish")
        probe_sent = [(times[i], pids[device_id(d)]) for i, d in plan.sent_probe]
        trig_sent = [(times[i], pids[device_id(d)]) for i, d in plan.sent_trigger]
        alerts: dict[int, list[float]] = defaultdict(list)
        for t, data in listener.alerts:
            alerts[int(data["patient_id"])].append(t)
        readings_ev: dict[int, list[float]] = defaultdict(list)
        alert_ev: dict[int, list[float]] = defaultdict(list)
        for t, kind, ev_pids in sse.events:
            target = readings_ev if kind == "readings" else alert_ev if kind == "alert" else None
            if target is not None:
                for pid in ev_pids:
                    target[pid].append(t)
        # A row shows a probe's reading once its latest[code].measured_at reaches the stamp.
        shown: dict[int, list[tuple[float, dict[str, str], float]]] = defaultdict(list)
        for t, pid, latest, t0 in sse.rows:
            shown[pid].append((t, latest, t0))
        event_at = {(pid, p): e for p, pid, e in match_first_after(probe_sent, readings_ev)}
        row_ms = []
        waited_ms, fetch_ms = [], []  # the event → the showing request's start → its end
        for t_pub, pid in probe_sent:
            stamp = dt.datetime.fromtimestamp(t_pub, dt.UTC)
            for t, latest, t0 in shown.get(pid, []):
                if t >= t_pub and shows(latest, t_pub, stamp):
                    row_ms.append((t - t_pub) * 1000)
                    e = event_at.get((pid, t_pub))
                    if e is not None:
                        waited_ms.append((t0 - e) * 1000)
                        fetch_ms.append((t - t0) * 1000)
                    break
        device_of = {p: d for d, p in pids.items()}
        trig_devices = sorted({device_id(d) for _, d in plan.sent_trigger})
        receipt = received(url, trig_devices, " AND code = 'systolic_bp'")
        receipt.update(received(url, [device_id(d) for d in range(a.probes)]))
        split("(a) publish → alert committed (NOTIFY)", match_first_after(trig_sent, alerts),
              len(trig_sent), receipt, device_of)
        # The trigger's commit: the first `readings` NOTIFY for its patient after the gateway
        # received it (exact while the gateway commits within a device's 0.5 s cadence).
        trig_at: list[tuple[float, int, float]] = []  # (receipt, patient, commit)
        for p, pid in trig_sent:
            r = receipt.get((device_of[pid], round(p * 1e6)))
            later = [t for t in listener.readings.get(pid, []) if r is not None and t >= r]
            if r is not None and later:
                trig_at.append((p, pid, later[0]))
        alert_at = {(pid, p): e for p, pid, e in match_first_after(trig_sent, alerts)}
        print(summary("      reading committed → alert committed", [
            (alert_at[(pid, p)] - c) * 1000 for p, pid, c in trig_at if (pid, p) in alert_at],
            len(trig_at)))
        breakdown(logs, trig_at, alert_at)
        split("(b) publish → SSE readings event      ", match_first_after(
            probe_sent, readings_ev), len(probe_sent), receipt, device_of)
        committed = match_first_after(probe_sent, listener.readings)
        print(summary("      publish → readings committed (NOTIFY)", [
            (e - p) * 1000 for p, _, e in committed], len(probe_sent)))
        at_commit = {(pid, p): e for p, pid, e in committed}
        print(summary("      readings committed → SSE event       ", [
            (e - at_commit[(pid, p)]) * 1000 for p, pid, e in match_first_after(
                probe_sent, readings_ev) if (pid, p) in at_commit], len(committed)))
        print(summary(f"(c) publish → row fetched with value ({a.fetch})", row_ms,
                      len(probe_sent)))
        print(summary("      SSE event → request start (waits for the one in flight)",
                      waited_ms, len(row_ms)))
        print(summary("      request start → row fetched (the request itself)      ",
                      fetch_ms, len(row_ms)))
        split("(d) publish → SSE alert event         ", match_first_after(trig_sent, alert_ev),
              len(trig_sent), receipt, device_of)
        resyncs = sum(1 for _, kind, _ in sse.events if kind == "resync")
        print(f"SSE events received {len(sse.events):,} (resync {resyncs}); row requests "
              f"{sse.fetches:,}")
        if sse.requests:
            print(summary("      row request duration", [d * 1000 for d, _ in sse.requests],
                          len(sse.requests)) + "; patients per request p50 "
                  f"{pct([n for _, n in sse.requests], 50):.0f}, max "
                  f"{max(n for _, n in sse.requests)}")
        patients, gaps = evaluated(logs)
        if gaps:
            print(f"evaluator: {patients:,} patient evaluations in {len(gaps) + 1} passes, "
                  f"{patients / (len(gaps) + 1):.0f} per pass; time between passes p50 "
                  f"{pct(gaps, 50) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms")
        print(cpu_report(procs, logs, patients, sum(n for _, n in sse.requests)))
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM readings").fetchone()
            queued = conn.execute("SELECT count(*) FROM alerting_queue").fetchone()
            raised = conn.execute(
                "SELECT count(DISTINCT patient_id) FROM alerts WHERE patient_id = ANY(%s)",
                ([p for _, p in trig_sent],)).fetchone()
        print(f"readings stored {stored[0] if stored else '?':,}, queue rows left "
              f"{queued[0] if queued else '?'}, alert probes with an episode "
              f"{raised[0] if raised else '?'} of {len(trig_sent)}; logs {logs}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        broker.stop()
        if a.keep_schema:
            print(f"schema kept: {url}")
        else:
            drop_schema(base_url, schema)


if __name__ == "__main__":
    raise SystemExit(main())
