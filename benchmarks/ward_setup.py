"""What the database benchmarks share: a throwaway migrated schema and a ward of admitted
patients in it, at one fixed instant, with the default escalation policy.

Also what the hub benchmarks share: a conninfo as a URL for a child process, and a real
`vward hub` started on a free port.

Not a benchmark itself: `bench_alerting.py`, `bench_risk_runner.py`, `bench_hub_limits.py`,
`bench_login_throttle.py` and `bench_session_check.py` import it (they put this folder on
`sys.path`, as for `bench_news2`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ward.db import connect
from ward.embedded import free_port

NOW = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)
POLICY = Path(__file__).resolve().parent.parent / "deploy" / "escalation" / "default.yaml"


@contextlib.contextmanager
def throwaway_schema() -> Iterator[str]:
    """A conninfo on a fresh, migrated schema of the test PostgreSQL (`VW_TEST_DATABASE_URL`
    or the machine's at 127.0.0.1:5432), dropped on the way out."""
    url = os.environ.get("VW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with connect.throwaway_schema(url, "bench_") as schema:
        yield schema.conninfo


def add_patients(conn: Any, n: int, admitted_at: dt.datetime | None = None) -> list[int]:
    """`n` patients (NHS numbers need not be valid for the schema), admitted at `admitted_at`
    when given; not committed."""
    # Patient locks are advisory and database-wide: start the ids far from other schemas'
    # (tests running beside the benchmark) so the two never wait on each other.
    conn.execute("SELECT setval(pg_get_serial_sequence('patients', 'id'), %s)",
                 (10_000_000 + uuid.uuid4().int % 1_000_000_000,))
    ids = [r[0] for r in conn.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "SELECT lpad((9000000000 + g)::text, 10, '0'), 'B', 'P' || g, '1950-01-01' "
        "FROM generate_series(1, %s) g RETURNING id", (n,))]
    if admitted_at is not None:
        conn.execute(
            "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, "
            "admitted_at) SELECT id, 'step_up', 'gp', 'admitted', %s, %s "
            "FROM unnest(%s::bigint[]) AS id", (admitted_at, admitted_at, ids))
    return ids


def conninfo_url(conninfo: str) -> str:
    """``conninfo`` (key=value, as throwaway_schema gives it) as a postgresql:// URL."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user, host = params.pop("user", "postgres"), params.pop("host", "127.0.0.1")
    port, dbname = params.pop("port", 5432), params.pop("dbname", "postgres")
    query = urllib.parse.urlencode({k: str(v) for k, v in params.items()},
                                   quote_via=urllib.parse.quote)
    return f"postgresql://{user}@{host}:{port}/{dbname}" + (f"?{query}" if query else "")


def start_hub(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """A real `vward hub` on ``url``'s database, on a free port, once its log-in page answers
    (up to 60 s); the process and its base URL."""
    port = free_port()
    env = {**os.environ, "VW_DATABASE_URL": url, "VW_LOG_LEVEL": "WARNING"}
    hub = subprocess.Popen([sys.executable, "-m", "ward.cli", "hub", "--port", str(port)],
                           env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/login", timeout=1).status_code == 200:
                break
        time.sleep(0.2)
    return hub, base
