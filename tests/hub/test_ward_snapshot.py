"""A ward row's score and its open alerts are one snapshot (issue 11.8).

An evaluation commits a new score and its alert change together; the ward view must never
show the score of one moment beside the alerts of another (seen live: a patient sorted as
"Low 0" while their NEWS2 3 alert counted down). The interleaving is made deterministic: the
other transaction commits just before the ward view's statement that reads the alerts, which
on the old code came after its separate read of the scores.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest

from tests.hub.conftest import T0
from ward.hub import wardview

NOW = T0


class _Interleaved:
    """The ward view's connection; `between` runs once, on another connection, right before
    the first statement that reads `alerts`."""

    def __init__(self, conn: psycopg.Connection[Any], between: Any) -> None:
        self._conn, self._between = conn, between

    def execute(self, query: Any, params: Any = None) -> Any:
        if self._between is not None and "FROM alerts" in str(query):
            between, self._between = self._between, None
            between()
        return self._conn.execute(query, params)


def _score(conn: psycopg.Connection[Any], pid: int, at: dt.datetime, total: int, risk: str,
           single3: bool) -> None:
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores) VALUES (%s, %s, %s, %s, %s, true, 1, %s)",
        (pid, at, total, risk, single3, json.dumps({"resp_rate": 3 if single3 else 0})))


def _alert(conn: psycopg.Connection[Any], pid: int, severity: str) -> int:
    row = conn.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at) "
        "VALUES (%s, 'news2', %s, 'raised', 'NEWS2 3', %s, %s) RETURNING id",
        (pid, severity, NOW - dt.timedelta(minutes=5), NOW - dt.timedelta(minutes=5)),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("direction", ["raised", "resolved"])
def test_score_and_alerts_are_read_at_one_moment(db: psycopg.Connection[Any], db_url: str,
                                                 admit: Any, direction: str) -> None:
    pid = admit()
    before = NOW - dt.timedelta(minutes=30)
    after = NOW - dt.timedelta(minutes=5)
    if direction == "raised":
        _score(db, pid, before, 0, "low", False)
    else:
        _score(db, pid, before, 3, "low_medium", True)
        open_id = _alert(db, pid, "low_medium")
    db.commit()

    def evaluation() -> None:
        with psycopg.connect(db_url) as other:
            if direction == "raised":
                _score(other, pid, after, 3, "low_medium", True)
                _alert(other, pid, "low_medium")
            else:
                _score(other, pid, after, 0, "low", False)
                other.execute("UPDATE alerts SET state = 'resolved', resolved_at = %s "
                              "WHERE id = %s", (after, open_id))

    view = wardview.load(_Interleaved(db, evaluation), now=NOW, beds=10,  # type: ignore[arg-type]
                         patient_ids=[pid])
    db.rollback()
    (row,) = view.rows
    assert row.score is not None
    shown = (row.score.total, [a.kind for a in row.alerts])
    # Either the moment before the evaluation or the one after it, never a mixture.
    assert shown in ((0, []), (3, ["news2"])), shown
    assert row.score.computed_at in (before, after)
