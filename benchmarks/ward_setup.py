"""What the database benchmarks share: a throwaway migrated schema and a ward of admitted
patients in it, at one fixed instant, with the default escalation policy.

Not a benchmark itself: `bench_alerting.py` and `bench_risk_runner.py` import it (they put
this folder on `sys.path`, as for `bench_news2`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ward.db import connect

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
