"""Migrations on the real PostgreSQL: ordered, recorded, idempotent, atomic."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ward.db import migrate as migrate_mod
from ward.db.migrate import Migration, MigrationError, load_migrations, migrate, storage_kind


def _tables(conn: psycopg.Connection[Any]) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }


def test_migrations_apply_then_rerun_is_noop(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        first = migrate(conn)
        assert [name.split("_")[0] for name in first] == [
            f"{m.version:04d}" for m in load_migrations()
        ]
        tables = _tables(conn)
        for table in ("patients", "admissions", "devices", "device_assignments", "readings",
                      "rejected_messages", "scores", "alerts", "alert_events",
                      "notification_outbox", "users", "audit_log", "latest_readings"):
            assert table in tables
        before = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert migrate(conn) == []
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == before
        assert storage_kind(conn) in {"plain", "timescaledb"}


def test_migrate_refuses_a_transaction(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url) as conn, pytest.raises(MigrationError, match="autocommit"):
        migrate(conn)


def test_failing_migration_rolls_back_and_names_file(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = load_migrations()
    bad = Migration(9999, "broken", {"": "CREATE TABLE half_done (x int); SELECT 1/0;"})
    monkeypatch.setattr(migrate_mod, "load_migrations", lambda: [*good, bad])
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="9999_broken"):
            migrate(conn)
        assert "half_done" not in _tables(conn)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert 9999 not in versions
        assert len(versions) == len(good)  # the good ones stayed applied


def test_edited_migration_is_detected(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn)
        edited = [
            Migration(m.version, m.name, {k: v + "\n-- edited" for k, v in m.variants.items()})
            for m in load_migrations()
        ]
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: edited)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn)


def test_cli_migrate_twice(empty_db_url: str, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    from ward.cli import main

    options = psycopg.conninfo.conninfo_to_dict(empty_db_url)["options"]
    assert isinstance(options, str)
    name = options.split("=")[1].split(",")[0]  # "-c search_path=t_xxx,public"
    monkeypatch.setenv("VW_DATABASE_URL", _as_url(empty_db_url))
    assert main(["migrate", "--schema", name]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["migrate", "--schema", name]) == 0
    assert "up to date" in capsys.readouterr().out


def _as_url(conninfo: str) -> str:
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = parts.get("user") or "postgres"
    host = parts.get("host") or "127.0.0.1"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or "postgres"
    if str(host).startswith("/"):
        return f"postgresql://{user}@/{dbname}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{dbname}"
