"""`vward maintain`: retention drops whole old partitions of readings, nothing newer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ward.cli import main
from ward.db.migrate import storage_kind
from ward.db.store import ReadingStore
from ward.domain.readings import Reading


def test_retention_drops_only_partitions_older_than_kept(
    db: psycopg.Connection[Any], db_url: str, to_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    if storage_kind(db) != "plain":
        pytest.skip("TimescaleDB applies retention with its own policy")
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=500)
    recent = now - dt.timedelta(days=3)
    ReadingStore().write(db, [
        Reading("ox-1", "spo2", when, 95.0, "%", 1, now) for when in (old, recent)])
    db.commit()
    monkeypatch.setenv("VW_DATABASE_URL", to_url(db_url))
    assert main(["maintain", "--keep-days", "400"]) == 0
    assert f"readings_{old:%Y%m}" in capsys.readouterr().out
    remaining = [r[0] for r in db.execute("SELECT measured_at FROM readings")]
    assert remaining == [recent]
    assert main(["maintain", "--keep-days", "400"]) == 0
    assert "nothing to drop" in capsys.readouterr().out
    assert main(["maintain", "--keep-days", "0"]) == 2
