"""`vward maintain`: retention drops whole old partitions of readings, nothing newer; dead
letters and ended hub sessions past their retention go, nothing newer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ward.cli import main
from ward.db.migrate import storage_kind
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.hub import audit
from ward.hub.auth import Role, create_user


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


def test_dead_letters_quarantines_and_first_seen_times_expire(
    db: psycopg.Connection[Any], db_url: str, to_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    now = dt.datetime.now(dt.UTC)
    old, recent = now - dt.timedelta(days=31), now - dt.timedelta(days=1)
    for i, when in enumerate((old, recent)):
        db.execute("INSERT INTO rejected_messages (received_at, topic, device_id, reason, detail, "
                   "payload, payload_sha256) VALUES (%s, 't', 'd', 'malformed_json', '', 'x', %s)",
                   (when, bytes([i])))
        db.execute("INSERT INTO device_quarantines (device_id, started_at, until, reason, detail)"
                   " VALUES ('d', %s, %s, 'dead_letter_flood', '')",
                   (when, when + dt.timedelta(hours=1)))
        db.execute("INSERT INTO dead_letter_budget (device_id, window_start) VALUES (%s, %s)",
                   (f"d{i}", when))
        db.execute("INSERT INTO senml_first_seen (device_id, msg_id, first_seen_at) "
                   "VALUES ('d', %s, %s)",
                   (f"senml-{i}", now - dt.timedelta(hours=25 if i == 0 else 1)))
    db.commit()
    monkeypatch.setenv("VW_DATABASE_URL", to_url(db_url))
    assert main(["maintain", "--dead-letter-days", "30"]) == 0
    assert "deleted 1 dead letter(s), 1 quarantine record(s) and 1 idle" in capsys.readouterr().out
    for table, column in (("rejected_messages", "received_at"),
                          ("device_quarantines", "started_at"),
                          ("dead_letter_budget", "window_start")):
        kept = [r[0] for r in db.execute(
            sql.SQL("SELECT {} FROM {}").format(sql.Identifier(column), sql.Identifier(table)))]
        assert kept == [recent], table
    # First-seen times live as long as the broker could redeliver: the session expiry (a day).
    assert [r[0] for r in db.execute("SELECT msg_id FROM senml_first_seen")] == ["senml-1"]
    assert main(["maintain", "--dead-letter-days", "0"]) == 2


def test_sessions_ended_long_ago_are_deleted_live_and_recent_ones_and_audit_kept(
    db: psycopg.Connection[Any], db_url: str, to_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    now = dt.datetime.now(dt.UTC)

    def days(n: int) -> dt.datetime:
        return now + dt.timedelta(days=n)

    user = create_user(db, "nurse.prune", "a long enough password", role=Role.HUB_NURSE)
    sessions = {  # name: (created, expires, revoked)
        "expired_long_ago": (days(-32), days(-31), None),
        "revoked_long_ago": (days(-40), days(-20), days(-39)),  # expiry recent, revoked long ago
        "live": (days(-1), days(1), None),
        "expired_recently": (days(-2), days(-1), None),
        "revoked_recently": (days(-1), days(1), days(-1)),
        "revoked_after_expiring": (days(-45), days(-10), days(-5)),  # ended at the expiry
    }
    for name, (created, expires, revoked) in sessions.items():
        db.execute("INSERT INTO hub_sessions (token_hash, user_id, kind, created_at, expires_at,"
                   " revoked_at) VALUES (%s, %s, 'cookie', %s, %s, %s)",
                   (name.encode(), user.id, created, expires, revoked))
        audit.record(db, user, "login", "session", now=created, detail={"kind": "cookie"})
    db.commit()
    monkeypatch.setenv("VW_DATABASE_URL", to_url(db_url))
    assert main(["maintain", "--session-days", "30"]) == 0
    assert "deleted 2 hub session(s)" in capsys.readouterr().out
    kept = {bytes(r[0]).decode() for r in db.execute("SELECT token_hash FROM hub_sessions")}
    assert kept == {"live", "expired_recently", "revoked_recently", "revoked_after_expiring"}
    # The audit trail of those log-ins is untouched.
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'login'").fetchone() == (6,)
    assert main(["maintain", "--session-days", "0"]) == 2
