"""NOTIFY channels are per schema: an event written in one schema never reaches a listener of
another, and each listener still hears its own (migration 0150, ward.db.channels).

Delivery order is commit order, so no waiting on time is needed to prove an absence: each
schema's last notification ("end") is committed after everything the other schema sent, so a
leaked notification would arrive before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ward.db import alerting_queue, channels
from ward.db.connect import throwaway_schema

Conn = psycopg.Connection[Any]


@pytest.fixture
def other_db_url(pg_url: str) -> Iterator[str]:
    """A second migrated schema, beside `db_url`'s."""
    with throwaway_schema(pg_url, "t_") as schema:
        yield schema.conninfo


def _until_end(listener: Conn) -> list[tuple[str, str]]:
    """(channel, payload) of every notification up to and including the 'end' marker."""
    got: list[tuple[str, str]] = []
    for note in listener.notifies(timeout=10):
        got.append((note.channel, note.payload))
        if note.payload == "end":
            break
    return got


def _send(url: str, statement: str, *params: Any) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(statement, params)


def test_events_stay_in_their_schema(db_url: str, other_db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as la, \
            psycopg.connect(other_db_url, autocommit=True) as lb:
        ca, cb = channels.listen(la, channels.EVENTS), channels.listen(lb, channels.EVENTS)
        assert ca != cb
        assert ca.startswith("vw_events.")
        assert cb.startswith("vw_events.")
        _send(db_url, "SELECT vw_notify(%s)", '{"type": "readings", "patient_ids": [42]}')
        _send(other_db_url, "SELECT vw_notify(%s)", '{"type": "readings", "patient_ids": [1]}')
        _send(db_url, "SELECT vw_notify('end')")
        _send(other_db_url, "SELECT vw_notify('end')")
        assert _until_end(la) == [(ca, '{"type": "readings", "patient_ids": [42]}'), (ca, "end")]
        assert _until_end(lb) == [(cb, '{"type": "readings", "patient_ids": [1]}'), (cb, "end")]


def test_trigger_events_stay_in_their_schema(db_url: str, other_db_url: str) -> None:
    """0031's ward-row triggers (here: a patient update) notify their own schema only."""
    insert = ("INSERT INTO patients (nhs_number, family_name, given_name, date_of_birth) "
              "VALUES (%s, 'Test', 'Pat', '1950-01-01') RETURNING id")
    with psycopg.connect(db_url, autocommit=True) as la, \
            psycopg.connect(other_db_url, autocommit=True) as lb, \
            psycopg.connect(db_url) as wa:
        pid = wa.execute(insert, ("9434765919",)).fetchone()[0]  # type: ignore[index]
        wa.commit()
        channels.listen(la, channels.EVENTS)
        channels.listen(lb, channels.EVENTS)
        wa.execute("UPDATE patients SET given_name = 'Pam' WHERE id = %s", (pid,))
        wa.commit()
        _send(other_db_url, "SELECT vw_notify('end')")
        _send(db_url, "SELECT vw_notify('end')")
        assert [p for _, p in _until_end(lb)] == ["end"]
        assert [p for _, p in _until_end(la)] == [
            f'{{"type": "patient", "patient_ids": [{pid}]}}', "end"]


def test_the_alerting_queue_wakes_its_own_schema_only(db_url: str, other_db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as la, \
            psycopg.connect(other_db_url, autocommit=True) as lb:
        qa = channels.listen(la, alerting_queue.CHANNEL)
        qb = channels.listen(lb, alerting_queue.CHANNEL)
        assert qa != qb
        with psycopg.connect(db_url) as wa, wa.cursor() as cur:
            alerting_queue.enqueue(cur, [7], dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        for url, channel in ((other_db_url, qb), (db_url, qa)):
            _send(url, "SELECT pg_notify(%s, 'end')", channel)
        assert _until_end(lb) == [(qb, "end")]
        assert _until_end(la) == [(qa, ""), (qa, "end")]


def test_public_keeps_the_plain_name_and_long_schemas_fit(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        home = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        fn = sql.SQL("SELECT {}.vw_channel(%s)").format(sql.Identifier(home))
        long = "t_" + "x" * 61  # 63 bytes, the longest identifier
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(long)))
        try:
            conn.execute("SET search_path TO public")
            assert conn.execute(fn, ("vw_events",)).fetchone() == ("vw_events",)
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(long)))
            (name,) = conn.execute(fn, ("vw_alerting_queue",)).fetchone()  # type: ignore[misc]
            assert len(name.encode()) <= 63
            assert name.startswith("vw_alerting_queue.")
            conn.execute(channels.listen_sql(name))  # a valid identifier, not truncated
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(long)))


def test_device_changes_reach_their_own_schemas_gateways(db_url: str, other_db_url: str) -> None:
    """0010's device-directory trigger: a gateway reloads only devices of its own schema."""
    with psycopg.connect(db_url, autocommit=True) as la, \
            psycopg.connect(other_db_url, autocommit=True) as lb:
        da, db_ = channels.listen(la, channels.DEVICES), channels.listen(lb, channels.DEVICES)
        _send(db_url, "INSERT INTO devices (id, kind) VALUES ('pox-a', 'pulse_oximeter')")
        _send(other_db_url, "SELECT pg_notify(%s, 'end')", db_)
        _send(db_url, "SELECT pg_notify(%s, 'end')", da)
        assert _until_end(lb) == [(db_, "end")]
        assert _until_end(la) == [(da, "pox-a"), (da, "end")]
