"""The shift handover's SQL: the last handover, the task notes written since, and a new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ward.hub.deps import Conn


@dataclass(frozen=True, slots=True)
class LastHandover:
    at: dt.datetime
    by: str


@dataclass(frozen=True, slots=True)
class TaskNote:
    patient_id: int
    at: dt.datetime
    actor: str
    action: str
    task: str  # task-<id> or obs-<id>
    note: str


def last(conn: Conn) -> LastHandover | None:
    row = conn.execute("SELECT at, by FROM handovers ORDER BY at DESC LIMIT 1").fetchone()
    return None if row is None else LastHandover(row[0], str(row[1]))


def notes_since(conn: Conn, since: dt.datetime, patient_ids: Sequence[int]) -> list[TaskNote]:
    """The notes written on these patients' tasks after `since`, oldest first."""
    return [TaskNote(int(pid), at, str(actor), str(action), f"{source}-{tid}", str(note))
            for pid, at, actor, action, source, tid, note in conn.execute(
                "SELECT patient_id, at, actor, action, source, task_id, note FROM task_events "
                "WHERE at > %s AND patient_id = ANY(%s) AND note <> '' ORDER BY at",
                (since, list(patient_ids)))]


def record(conn: Conn, at: dt.datetime, by: str) -> None:
    """The shift handed over at `at`: later notes belong to the next handover."""
    conn.execute("INSERT INTO handovers (at, by) VALUES (%s, %s)", (at, by))
