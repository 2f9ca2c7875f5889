"""Benchmark the gateway beside the C ceiling and the best-practice Python consumer, one run.

Usage:
    python benchmarks/bench_ingest.py [--n 100000] [--runs 1]
        [--only a,b3,b5,g1,g1a,g2a] (also: c, g2, g1-311, g1a-311, g2a-311, lat)
        [--protocol 5|3.1.1] [--results problems|all] [--results-qos 0|1]
        [--lat-rate 2000] [--lat-seconds 30] [--bench-dir ../shared/bench]
        [--soak-minutes 10] (RSS of a fixed-rate run of that length, at --lat-rate)
        [--base DIR] (then KEY@base for any gateway scenario KEY: the same from the tree DIR)

The yardstick is the reference harness in `../shared/bench` (read-only, imported, not copied):
its Mosquitto (own port), its load generator (QoS 1, one reading per message, 1,000 devices
`dev-00000…`), its one end-to-end timer (first publish → all N rows committed) and its CPU/RSS
sampler, so every figure below comes from the same timer on the same load in one invocation.
Only ratios inside one invocation mean anything on this shared machine.

Scenarios (`--only`; the default is the headline set a,b3,b5,g1,g1a,g2a):
  a    C ceiling: mosquitto_sub → mawk → psql \\copy
  b3   best-practice Python consumer, MQTT 3.1.1 (b5: the same on MQTT 5)
  c    the harness's naive bridge, one INSERT + commit per message (on N/5 messages)
  g1   `vward gateway`, alerting off          g1a  the same, alerting on (+ `vward alerting`)
  g2   two gateways on one shared subscription, alerting off      g2a  alerting on
  g1-311, g1a-311, g2a-311: the same on MQTT 3.1.1 whatever --protocol says
  lat  one gateway + `vward alerting` at --lat-rate msgs/s: publish → receipt (read back from
       readings: measured_at is the publish instant) and receipt → alert evaluation committed
       (the evaluator's own per-row figure), p50/p99
The gateway's database is a schema with the project's migrations and the 1,000 devices
registered and assigned, in a throwaway database (dropped at the end); alerting on means the
gateway queues patients (`VW_GATEWAY_ALERTING=true`) and `vward alerting` evaluates them, and
the run also reports how long the evaluator took to empty its queue after the last row.
Memory: RSS of the gateway processes sampled every second, first vs last third of the run.

The table's headline columns: × the C ceiling, and × the best-practice consumer *on the
gateway's protocol* (b5 for MQTT 5, b3 for 3.1.1; the consumer on 3.1.1 is faster here).
"gateway CPU µs/msg" is the CPU of every process the scenario started (gateways and, alerting
on, `vward alerting`) per message: steadier than msgs/s on a loaded machine. "PostgreSQL CPU
µs/msg": every backend of the server (other tenants' too) per message.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _bench_dir(given: str | None) -> Path:
    candidates = [Path(given)] if given else [REPO.parent / "shared" / "bench",
                                              REPO.parents[1] / "shared" / "bench"]
    for folder in candidates:
        if (folder / "limits.py").exists():
            return folder
    sys.exit(f"reference harness not found in {', '.join(map(str, candidates))} "
             "(give --bench-dir)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_harness(folder: Path, db_url: str, run_id: str) -> ModuleType:
    """Import ../shared/bench/limits.py, pointed at our PostgreSQL and a database of our own."""
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(db_url)
    # The harness reads these at import; a database and a folder of our own, so seven other
    # engineers running it at the same time cannot truncate or drop what we measure.
    os.environ.update(VWBENCH_PGHOST=str(params.get("host", "127.0.0.1")),
                      VWBENCH_PGPORT=str(params.get("port", 5432)),
                      VWBENCH_PGUSER=str(params.get("user", "postgres")),
                      VWBENCH_DB=f"vwbench_{run_id}",
                      VWBENCH_TMP=tempfile.mkdtemp(prefix=f"vwbench-{run_id}-"))
    sys.path.insert(0, str(folder))
    import limits  # type: ignore[import-not-found]

    return limits  # type: ignore[no-any-return]


def _project_db(harness: ModuleType, devices: int) -> str:
    """The project's schema (migrations) in the harness's database, devices registered."""
    import psycopg

    from ward.db.connect import create_schema, migrate_url, with_schema
    from ward.domain.nhs_number import with_check_digit

    bench_url = harness.common.BENCH_URL
    create_schema(bench_url, "vw")
    url = with_schema(bench_url, "vw")
    migrate_url(url)
    numbers = (n for n in (with_check_digit(f"{900000000 + k:09d}") for k in range(20 * devices))
               if n)
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_devices (id text, nhs text) ON COMMIT DROP")
        with conn.cursor().copy("COPY bench_devices FROM STDIN") as copy:
            for i, nhs in zip(range(devices), numbers, strict=False):
                copy.write_row((harness.common.device_id(i), nhs))
        conn.execute(
            "WITH p AS (INSERT INTO patients (nhs_number, given_name, family_name, "
            "date_of_birth) SELECT nhs, 'Bench', id, '1950-01-01' FROM bench_devices "
            "RETURNING id AS patient_id, family_name AS device_id), "
            "d AS (INSERT INTO devices (id, kind) SELECT id, 'pulse_oximeter' FROM bench_devices "
            "RETURNING pk, id) INSERT INTO device_assignments (device_pk, patient_id, during) "
            "SELECT d.pk, p.patient_id, tstzrange('2020-01-01', NULL) FROM p JOIN d "
            "ON d.id = p.device_id")
    return url


def _as_url(conninfo: str) -> str:
    import urllib.parse

    import psycopg

    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = urllib.parse.urlencode({"options": p.get("options", "")}, quote_via=urllib.parse.quote)
    return (f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:"
            f"{p.get('port', 5432)}/{p.get('dbname', 'postgres')}?{query}")


class RssWatch(threading.Thread):
    """RSS (MiB) of every process whose environment carries `marker`, every `every` seconds:
    the total (`samples`) and per role (`roles`: "gateway" or "alerting", by command line),
    each sample with its time since the start (`at`)."""

    def __init__(self, marker: str, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.marker = marker.encode()
        self.every = every
        self.samples: list[float] = []
        self.at: list[float] = []
        self.roles: dict[str, list[float]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        page = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self.done.wait(self.every):
            total = 0.0
            by_role: dict[str, float] = {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if self.marker not in Path(f"/proc/{pid}/environ").read_bytes():
                        continue
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except (OSError, ValueError, IndexError):
                    continue
                role = "gateway" if b"gateway" in command else "alerting"
                total += rss
                by_role[role] = by_role.get(role, 0.0) + rss
            if total:
                self.samples.append(total)
                self.at.append(time.monotonic() - started)
                for role, rss in by_role.items():
                    self.roles.setdefault(role, []).append(rss)

    def summary(self) -> str:
        s = self.samples
        if len(s) < 3:
            return "n/a (run too short)"
        third = len(s) // 3
        return (f"first third {statistics.median(s[:third]):.0f}, last third "
                f"{statistics.median(s[-third:]):.0f}, max {max(s):.0f} MiB")

    def soak_report(self) -> list[str]:
        """Per role: the median RSS of the first and the last minute, the maximum, and one
        figure a minute (median of that minute's samples)."""
        lines = []
        for role, values in sorted(self.roles.items()):
            per_minute: dict[int, list[float]] = {}
            for at, rss in zip(self.at, values, strict=False):
                per_minute.setdefault(int(at // 60), []).append(rss)
            minutes = [statistics.median(v) for _, v in sorted(per_minute.items())]
            if not minutes:
                continue
            lines.append(f"{role}: start {minutes[0]:.1f} MiB (first minute's median), end "
                         f"{minutes[-1]:.1f} MiB (last minute's), max {max(values):.1f} MiB; "
                         f"per minute: {', '.join(f'{m:.0f}' for m in minutes)}")
        return lines


def _gateway_cmd(a: argparse.Namespace, url: str, broker_port: int, marker: str, *,
                 gateways: int, alerting: bool, protocol: str,
                 code: Path = REPO) -> tuple[str, str]:
    """A shell command starting the processes (from the tree `code`), and the regex of their
    all-ready log."""
    env = {"VW_DATABASE_URL": _as_url(url), "VW_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
           "VW_MQTT_SHARE_GROUP": "bench" if gateways > 1 else "",
           "VW_GATEWAY_ALERTING": "true" if alerting else "false",
           "VW_GATEWAY_RESULTS": a.results, "VW_GATEWAY_RESULTS_QOS": str(a.results_qos),
           "VW_MQTT_PROTOCOL": protocol, "VW_LOG_LEVEL": "INFO", "PYTHONPATH": str(code),
           "VWBENCH_MARKER": marker}
    prefix = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    py = shlex.quote(sys.executable)
    parts = [f"{prefix} {py} -m ward.cli gateway --client-id {marker}-gw-{i} &"
             for i in range(gateways)]
    ready = rf"(?=(?:.*?mqtt subscribed){{{gateways}}})"
    if alerting:
        # DEBUG on the evaluator only: its per-pass line carries the per-row latencies.
        parts.append(f"{prefix} VW_LOG_LEVEL=DEBUG {py} -m ward.cli alerting --interval 15 "
                     f"--policy {shlex.quote(str(code / 'deploy/escalation/default.yaml'))} &")
        ready += r"(?=.*?alerting evaluator listening)"
    return " ".join(parts) + " wait", "(?s)^" + ready


def _queue_drain_s(url: str, timeout: float = 120) -> float | None:
    """Seconds until `alerting_queue` is empty (None: still not after `timeout`)."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            row = conn.execute("SELECT count(*) FROM alerting_queue").fetchone()
            if row is not None and row[0] == 0:
                return time.monotonic() - started
            time.sleep(0.1)
    return None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _marked(marker: bytes) -> list[int]:
    """Pids of the processes whose environment carries `marker` (this run's gateways)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def _wait_gone(marker: str, timeout: float = 60) -> None:
    """Wait until the last scenario's processes have exited (the harness only waits for their
    shell): a gateway or evaluator still shutting down holds locks the next reset's TRUNCATE
    needs (a deadlock), and steals CPU from the next scenario."""
    deadline = time.monotonic() + timeout
    while (left := _marked(marker.encode())) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        sys.exit(f"processes of an earlier scenario did not stop: {left}")


def _run_gateway(harness: ModuleType, ctx: Any, a: argparse.Namespace, url: str, marker: str,
                 *, gateways: int, alerting: bool, n: int, rate: float = 0,
                 protocol: str | None = None, code: Path = REPO,
                 watch_every: float = 1.0) -> dict[str, Any]:
    _wait_gone(marker)
    a_ns = ctx.a
    a_ns.gateway_cmd, a_ns.gateway_ready_regex = _gateway_cmd(
        a, url, ctx.broker.port, marker, gateways=gateways, alerting=alerting,
        protocol=protocol or a.protocol, code=code)
    a_ns.gateway_db = url
    a_ns.gateway_reset_sql = "TRUNCATE readings, latest_readings, alerting_queue"
    a_ns.gateway_latency_sql = (
        "SELECT extract(epoch FROM received_at - measured_at) FROM readings"
        if rate else None)
    watch = RssWatch(marker, watch_every)
    watch.start()
    result: dict[str, Any] = harness.scen_g(ctx, n, rate=rate) if rate else _timed_g(
        harness, ctx, n, url, alerting)
    watch.done.set()
    _wait_gone(marker)
    result["rss"] = watch.summary()
    result["soak"] = watch.soak_report()
    result["protocol"] = protocol or a.protocol
    if rate and alerting:
        text = Path(result["gateway_log"]).read_text(errors="replace")
        lags = [float(x) for m in re.finditer(r"lags_ms=([0-9.,]+)", text)
                for x in m.group(1).split(",") if x]
        result["eval_lags_ms"] = lags
    return result


def _timed_g(harness: ModuleType, ctx: Any, n: int, url: str, alerting: bool) -> dict[str, Any]:
    """scen_g, plus (alerting on) the time the evaluator needs to empty its queue afterwards.

    scen_g stops the processes when the last row is counted, so the drain is measured by
    wrapping its timer: the queue is read before the processes are stopped.
    """
    if not alerting:
        return harness.scen_g(ctx, n)  # type: ignore[no-any-return]
    original = harness.e2e
    drained: list[float | None] = []

    def e2e_then_drain(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        drained.append(_queue_drain_s(url))
        return out

    harness.e2e = e2e_then_drain
    try:
        result: dict[str, Any] = harness.scen_g(ctx, n)
    finally:
        harness.e2e = original
    result["queue_drain_s"] = drained[0] if drained else None
    return result


# The gateway scenarios' settings, by key (for the `--base` variants).
_GATEWAY_SCENARIOS: dict[str, dict[str, Any]] = {
    "g1": {"gateways": 1, "alerting": False}, "g1a": {"gateways": 1, "alerting": True},
    "g2": {"gateways": 2, "alerting": False}, "g2a": {"gateways": 2, "alerting": True},
    "g1-311": {"gateways": 1, "alerting": False, "protocol": "3.1.1"},
    "g1a-311": {"gateways": 1, "alerting": True, "protocol": "3.1.1"},
    "g2a-311": {"gateways": 2, "alerting": True, "protocol": "3.1.1"},
}


def main() -> None:  # noqa: PLR0915 - one linear script: set up, run the plan, print the table
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="messages per throughput run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", default="a,b3,b5,g1,g1a,g2a")
    parser.add_argument("--protocol", default="5", choices=("5", "3.1.1"),
                        help="the gateway's MQTT protocol (VW_MQTT_PROTOCOL)")
    parser.add_argument("--results", default="problems", choices=("problems", "all"),
                        help="VW_GATEWAY_RESULTS (default: the gateway's default, problems)")
    parser.add_argument("--results-qos", type=int, default=1, choices=(0, 1))
    parser.add_argument("--lat-rate", type=float, default=2000.0, help="msgs/s")
    parser.add_argument("--lat-seconds", type=float, default=30.0)
    parser.add_argument("--broker-max-inflight", type=int, default=20,
                        help="the harness broker's max_inflight_messages (its default: 20; "
                        "it caps what an MQTT 3.1.1 consumer has un-acknowledged)")
    parser.add_argument("--bench-dir")
    parser.add_argument("--soak-minutes", type=float, default=0,
                        help="after the plan: one gateway + `vward alerting` at --lat-rate "
                        "msgs/s for this long, RSS of each sampled every 5 s (start, end, max, "
                        "one figure a minute)")
    parser.add_argument("--base", type=Path,
                        help="another tree of the project (e.g. `git archive main | tar -x -C "
                        "DIR`): every gateway scenario KEY also runs from it as KEY@base, in "
                        "the same invocation (the schema is this tree's migrations)")
    a = parser.parse_args()
    only = [key for key in a.only.split(",") if key]

    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    run_id = uuid.uuid4().hex[:8]
    harness = _load_harness(_bench_dir(a.bench_dir), base, run_id)
    os.makedirs(harness.common.WORK_DIR, exist_ok=True)
    harness.common.ensure_bench_db()
    ns = argparse.Namespace(
        broker_port=_free_port(), external_broker=False,
        broker_max_inflight=a.broker_max_inflight,
        broker_max_queued=0, devices=1000, poll=0.2, stall_s=15, hypertable=False,
        batch=1000, linger_ms=20, gateway_cmd=None, gateway_db=None, gateway_count_sql=(
            "select count(*) from readings"), gateway_latency_sql=None,
        gateway_reset_sql=None, gateway_ready_s=3, gateway_ready_regex=None)
    ctx = harness.Ctx(ns)
    marker = f"vwb{run_id}"
    rows: dict[str, list[dict[str, Any]]] = {}
    plan: list[tuple[str, Any]] = []
    url = ""
    try:
        url = _project_db(harness, ns.devices)
        scenarios = {
            "a": ("C ceiling (mosquitto_sub | mawk | psql \\copy)",
                  lambda: harness.scen_a(ctx, a.n)),
            "b3": ("best-practice Python consumer, MQTT 3.1.1",
                   lambda: harness.scen_consumer(ctx, "best", a.n, "v311")),
            "b5": ("best-practice Python consumer, MQTT 5",
                   lambda: harness.scen_consumer(ctx, "best", a.n, "v5")),
            "c": ("naive bridge (INSERT + commit per message)",
                  lambda: harness.scen_consumer(ctx, "naive", a.n // 5, "v311")),
            "g1": ("vward gateway x1, alerting off", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=1, alerting=False, n=a.n)),
            "g1a": ("vward gateway x1, alerting on", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=1, alerting=True, n=a.n)),
            "g2": ("vward gateway x2 ($share), alerting off", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=2, alerting=False, n=a.n)),
            "g2a": ("vward gateway x2 ($share), alerting on", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=2, alerting=True, n=a.n)),
            "g1-311": ("vward gateway x1, alerting off, MQTT 3.1.1", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=1, alerting=False, n=a.n,
                protocol="3.1.1")),
            "g1a-311": ("vward gateway x1, alerting on, MQTT 3.1.1", lambda: _run_gateway(
                harness, ctx, a, url, marker, gateways=1, alerting=True, n=a.n,
                protocol="3.1.1")),
            "g2a-311": ("vward gateway x2 ($share), alerting on, MQTT 3.1.1",
                        lambda: _run_gateway(harness, ctx, a, url, marker, gateways=2,
                                             alerting=True, n=a.n, protocol="3.1.1")),
        }
        if a.base is not None:
            base_tree = a.base.resolve()
            for key, (label, _fn) in list(scenarios.items()):
                if key.startswith("g"):
                    scenarios[f"{key}@base"] = (f"{label} [base]", functools.partial(
                        _run_gateway, harness, ctx, a, url, marker, n=a.n, code=base_tree,
                        **_GATEWAY_SCENARIOS[key]))
        plan = [(k, scenarios[k]) for k in only if k in scenarios]
        if unknown := [k for k in only if k not in scenarios and k != "lat"]:
            sys.exit(f"unknown scenarios: {', '.join(unknown)}")
        print(f"ingest benchmark: {a.n:,} QoS 1 messages of one reading, {ns.devices} devices, "
              f"reference harness {harness.__file__}; gateway MQTT {a.protocol}, results "
              f"{a.results} at QoS {a.results_qos}; runs {a.runs}", flush=True)
        for run in range(a.runs):
            for key, (label, fn) in plan:
                r = fn()
                rows.setdefault(key, []).append(r)
                extra = f" queue drained {r['queue_drain_s']:.1f} s after" if r.get(
                    "queue_drain_s") is not None else ""
                print(f"[run {run + 1}] {label:44s} {r['msgs_per_s']:>9,.0f} msg/s "
                      f"missing={r.get('missing')} cpu={r['cpu']['cpu_s']}{extra}", flush=True)
        if "lat" in only:
            n = int(a.lat_rate * a.lat_seconds)
            r = _run_gateway(harness, ctx, a, url, marker, gateways=1, alerting=True, n=n,
                             rate=a.lat_rate)
            rows["lat"] = [r]
        if a.soak_minutes:
            n = int(a.lat_rate * 60 * a.soak_minutes)
            r = _run_gateway(harness, ctx, a, url, marker, gateways=1, alerting=True, n=n,
                             rate=a.lat_rate, protocol=a.protocol, watch_every=5.0)
            rows["soak"] = [r]
    finally:
        if ctx.broker.managed:
            ctx.broker.stop()
        harness.common.drop_bench_db()

    def median(key: str) -> float:
        return statistics.median(r["msgs_per_s"] for r in rows[key])

    def cpu_us(key: str, role: str | None = None) -> str:
        role = role or ("gateway" if key.startswith("g") else "consumer")
        spent = [r["cpu"]["cpu_s"].get(role) for r in rows[key]]
        values = [1e6 * s / n for s, n in zip(spent, (r.get("n", a.n) for r in rows[key]),
                                               strict=True) if s]
        return f"{statistics.median(values):.0f}" if values else ""

    ceiling = median("a") if "a" in rows else None
    best = {p: median(k) for p, k in (("3.1.1", "b3"), ("5", "b5")) if k in rows}
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores; ratios only)")
    print("\n| path | msgs/s | x C ceiling | x best-practice, same protocol | "
          "gateway CPU us/msg | PostgreSQL CPU us/msg | peak RSS MiB | RSS over run |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for key, (label, _fn) in plan:
        rate = median(key)
        rss = rows[key][-1]["cpu"]["peak_rss_mb"]
        protocol = rows[key][-1].get("protocol") or {"b3": "3.1.1", "b5": "5"}.get(key)
        versus = best.get(protocol) if protocol else None
        print(f"| {label}{f' [MQTT {protocol}]' if key.startswith('g') else ''} | {rate:,.0f} | "
              f"{rate / ceiling if ceiling else float('nan'):.2f} | "
              f"{rate / versus if versus else float('nan'):.2f} | {cpu_us(key)} | "
              f"{cpu_us(key, 'postgres')} | "
              f"{', '.join(f'{k} {v:.0f}' for k, v in rss.items())} | "
              f"{rows[key][-1].get('rss', '')} |")
    if "lat" in rows:
        r = rows["lat"][0]
        print(f"\nlatency, one gateway + vward alerting at {a.lat_rate:,.0f} msgs/s for "
              f"{a.lat_seconds:.0f} s ({r.get('stored')} of {r['n']} stored): publish → receipt "
              f"p50 {r.get('lat_p50_ms')} ms, p99 {r.get('lat_p99_ms')} ms (read back)")
        lags = r.get("eval_lags_ms") or []
        if lags:
            print(f"receipt → alert evaluation committed (per ingest batch, {len(lags):,} "
                  f"batches): p50 {_pct(lags, 50):.0f} ms, p99 {_pct(lags, 99):.0f} ms, max "
                  f"{max(lags):.0f} ms; RSS {r['rss']}")
        else:
            print("receipt → alert evaluation committed: no evaluator figures in the log")
    if "soak" in rows:
        r = rows["soak"][0]
        print(f"\nsoak: one gateway + vward alerting at {a.lat_rate:,.0f} msgs/s for "
              f"{a.soak_minutes:g} min, MQTT {a.protocol} ({r.get('stored')} of {r['n']} stored; "
              f"publish → receipt p50 {r.get('lat_p50_ms')} ms, p99 {r.get('lat_p99_ms')} ms); "
              "RSS sampled every 5 s:")
        for line in r["soak"]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
