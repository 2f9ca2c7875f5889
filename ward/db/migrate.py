"""Ordered plain-SQL migrations, each applied in its own transaction and recorded.

Files are `NNNN_name.sql`, or a pair `NNNN_name.timescale.sql` / `NNNN_name.plain.sql` when
TimescaleDB and plain PostgreSQL need different DDL. The storage kind is detected once (is the
`timescaledb` extension installed, or installable?), recorded in `vw_meta`, and every later
variant follows it. Re-running is a no-op; a migration edited after it was applied is an error;
a failing migration rolls back entirely and names the file.

Concurrent migrators (two gateways starting at once) serialise on an advisory lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<variant>timescale|plain))?\.sql$")
# Arbitrary but fixed: the advisory lock key all migrators agree on ("vwmg").
_LOCK_KEY = 0x76776D67


class MigrationError(RuntimeError):
    """A migration failed or the recorded history does not match the files."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variants: dict[str, str]  # "" (both), "timescale" or "plain" → SQL text

    def sql_for(self, storage: str) -> tuple[str, str]:
        if "" in self.variants:
            return "", self.variants[""]
        key = "timescale" if storage == "timescaledb" else "plain"
        if key not in self.variants:
            msg = f"migration {self.version:04d}_{self.name} has no {key} variant"
            raise MigrationError(msg)
        return key, self.variants[key]


def load_migrations() -> list[Migration]:
    found: dict[int, Migration] = {}
    folder = resources.files("ward.db") / "migrations"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = _FILE.match(entry.name)
        if not match:
            continue
        version = int(match["version"])
        migration = found.setdefault(version, Migration(version, match["name"], {}))
        if migration.name != match["name"]:
            msg = f"two migrations numbered {version:04d}: {migration.name}, {match['name']}"
            raise MigrationError(msg)
        migration.variants[match["variant"] or ""] = entry.read_text(encoding="utf-8")
    return [found[v] for v in sorted(found)]


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def detect_storage(conn: psycopg.Connection[Any]) -> str:
    """'timescaledb' when the extension is installed or can be, else 'plain'.

    Never assumed: we look at pg_extension, then pg_available_extensions, and only then try to
    create it (it needs `shared_preload_libraries`, so "available" is not enough).
    """
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if row:
        return "timescaledb"
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not row:
        return "plain"
    try:
        with conn.transaction():
            # In public: per-test schemas are dropped with CASCADE and must not take it along.
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
    except psycopg.Error as exc:
        log.warning(
            "TimescaleDB is available but cannot be created (%s); using plain PostgreSQL "
            "partitioning. Add timescaledb to shared_preload_libraries to use it.",
            exc.diag.message_primary or exc,
        )
        return "plain"
    return "timescaledb"


def _ensure_history(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            variant    text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply every pending migration; return the names applied (empty when up to date).

    `conn` must be in autocommit mode; each migration gets its own transaction.
    """
    if not conn.autocommit:
        msg = "migrate() needs an autocommit connection: each migration is its own transaction"
        raise MigrationError(msg)
    applied_now: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        _ensure_history(conn)
        history = {
            int(str(v)): (str(n), str(var), str(c))
            for v, n, var, c in conn.execute(
                "SELECT version, name, variant, checksum FROM schema_migrations"
            ).fetchall()
        }
        storage_row = None
        if history:
            storage_row = conn.execute(
                "SELECT value FROM vw_meta WHERE key = 'readings_storage'"
            ).fetchone()
        storage = str(storage_row[0]) if storage_row else detect_storage(conn)
        for migration in load_migrations():
            variant, text = migration.sql_for(storage)
            label = f"{migration.version:04d}_{migration.name}" + (f".{variant}" if variant else "")
            if migration.version in history:
                _, done_variant, checksum = history[migration.version]
                done_text = migration.variants.get(done_variant)
                if done_text is None or checksum != _checksum(done_text):
                    msg = f"migration {label} was changed after it was applied"
                    raise MigrationError(msg)
                continue
            try:
                with conn.transaction():
                    conn.execute(sql.SQL(text))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, variant, checksum) "
                        "VALUES (%s, %s, %s, %s)",
                        (migration.version, migration.name, variant, _checksum(text)),
                    )
            except psycopg.Error as exc:
                msg = f"migration {label} failed and was rolled back: {exc}"
                raise MigrationError(msg) from exc
            log.info("applied migration %s", label)
            applied_now.append(label)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def storage_kind(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT value FROM vw_meta WHERE key = 'readings_storage'").fetchone()
    return str(row[0]) if row else "plain"
