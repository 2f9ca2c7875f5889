"""The queue evaluator: coalesces, consumes rows only with the evaluation, survives crashes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import psycopg
import pytest

from alerting.evaluator import Evaluator
from alerting.runner import evaluate_after_commit
from tests.alerting.conftest import AddPatients, MakeReadings, WriteReadings
from ward.db import alerting_queue

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


class RecordingHook:
    """Stands in for `evaluate_after_commit`: records calls, writes a row, may fail."""

    def __init__(self, fail_for: frozenset[int] = frozenset(),
                 block: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_for = fail_for
        self.block = block
        self.entered = threading.Event()

    def __call__(self, conn: psycopg.Connection[Any], patients: list[int],
                 now: dt.datetime) -> None:
        self.calls.append(patients)
        self.entered.set()
        if self.block is not None:
            self.block.wait(10)
        # A write in the evaluation's transaction: it must commit (or vanish) with the rows.
        conn.execute("INSERT INTO evaluated (patient_id) SELECT unnest(%s::bigint[])",
                     (patients,))
        if self.fail_for & set(patients):
            msg = "evaluation failed"
            raise RuntimeError(msg)


@pytest.fixture
def queue_db(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute("CREATE TABLE evaluated (patient_id bigint NOT NULL)")
    db.commit()
    return db


def _enqueue(conn: psycopg.Connection[Any], *batches: list[int]) -> None:
    with conn.cursor() as cur:
        for patients in batches:
            alerting_queue.enqueue(cur, patients, NOW)
    conn.commit()


def _evaluated(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute("SELECT patient_id FROM evaluated ORDER BY patient_id").fetchall()
    conn.commit()
    return [r[0] for r in rows]


def test_queued_batches_are_coalesced_into_one_evaluation(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    _enqueue(queue_db, [3, 1], [2], [1, 4])
    hook = RecordingHook()
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW)
    try:
        result = evaluator.run_once()
        assert evaluator.run_once() is None  # nothing left
    finally:
        evaluator.close()
    assert hook.calls == [[1, 2, 3, 4]]
    assert result is not None
    assert (result.patients, result.rows) == (4, 3)
    assert alerting_queue.depth(queue_db) == 0
    assert _evaluated(queue_db) == [1, 2, 3, 4]


def test_a_patient_whose_evaluation_fails_is_requeued_and_the_others_are_stored(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    _enqueue(queue_db, [5, 6, 7])
    hook = RecordingHook(fail_for=frozenset({6}))
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW)
    try:
        result = evaluator.run_once()
    finally:
        evaluator.close()
    assert result is not None
    assert result.failed == (6,)
    assert hook.calls == [[5, 6, 7], [5], [6], [7]]
    # The failed batch attempt rolled back to its savepoint: 5 and 7 are stored once.
    assert _evaluated(queue_db) == [5, 7]
    taken = alerting_queue.take(queue_db, 10)
    queue_db.rollback()
    assert taken.patient_ids == (6,)


def _crash_mid_pass(queue_db: psycopg.Connection[Any], evaluator: Evaluator,
                    hook: RecordingHook, gate: threading.Event) -> list[BaseException]:
    """Run one pass and kill its session inside the hook; return what the pass raised."""
    errors: list[BaseException] = []

    def crashing_pass() -> None:
        try:
            evaluator.run_once()
        except psycopg.OperationalError as exc:
            errors.append(exc)

    worker = threading.Thread(target=crashing_pass)
    worker.start()
    try:
        assert hook.entered.wait(10)
        # The evaluator's session dies mid-transaction, as it would with its process.
        queue_db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'vw-alerting-eval'")
        queue_db.commit()
        gate.set()
        worker.join(10)
    finally:
        evaluator.close()
    return errors


def test_a_crash_during_evaluation_puts_the_rows_back(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    _enqueue(queue_db, [8, 9])
    gate = threading.Event()
    hook = RecordingHook(block=gate)
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW)
    errors = _crash_mid_pass(queue_db, evaluator, hook, gate)
    assert errors, "the pass should have lost its connection"
    assert _evaluated(queue_db) == []
    again = RecordingHook()
    retry = Evaluator(db_url, again, clock=lambda: NOW)
    try:
        retry.run_once()
    finally:
        retry.close()
    assert again.calls == [[8, 9]]
    assert _evaluated(queue_db) == [8, 9]


def test_ingest_never_waits_for_an_evaluator_holding_rows(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    _enqueue(queue_db, [10])
    gate = threading.Event()
    hook = RecordingHook(block=gate)
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW)
    worker = threading.Thread(target=evaluator.run_once)
    worker.start()
    try:
        assert hook.entered.wait(10)
        # While the evaluator holds its rows, an ingest transaction queues the same patient;
        # lock_timeout turns any wait into an error.
        with psycopg.connect(db_url) as ingest:
            ingest.execute("SET lock_timeout = '200ms'")
            started = time.monotonic()
            with ingest.cursor() as cur:
                alerting_queue.enqueue(cur, [10, 11], NOW)
            ingest.commit()
            assert time.monotonic() - started < 1.0
    finally:
        gate.set()
        worker.join(10)
        evaluator.close()
    taken = alerting_queue.take(queue_db, 10)
    queue_db.rollback()
    assert taken.patient_ids == (10, 11)  # queued again: evaluated on the next pass


def test_the_runner_scores_a_queued_patient(
        db: psycopg.Connection[Any], db_url: str, add_patients: AddPatients,
        readings: MakeReadings, write_readings: WriteReadings) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    [pid] = add_patients(db, 1, now - dt.timedelta(days=1))
    write_readings(db, readings(pid, now - dt.timedelta(minutes=1), spo2=88, pulse=128,
                                resp_rate=27, temperature=39.2, systolic_bp=92))
    _enqueue(db, [pid])
    evaluator = Evaluator(db_url, evaluate_after_commit, clock=lambda: now)
    try:
        assert evaluator.drain() == 1
    finally:
        evaluator.close()
    row = db.execute("SELECT count(*) FROM scores WHERE patient_id = %s", (pid,)).fetchone()
    assert row is not None
    assert row[0] == 1
    assert alerting_queue.depth(db) == 0


# Coalescing passes (issue 14): every row taken, a bounded subset evaluated, the rest put
# back as one row with each patient's earliest receipt and urgency.

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def _rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT id, patient_ids, received_at, urgent_ids, receipts "
                        "FROM alerting_queue ORDER BY id").fetchall()
    conn.commit()
    return rows


def _enqueue_at(conn: psycopg.Connection[Any],
                *batches: tuple[list[int], dt.datetime, list[int]]) -> None:
    with conn.cursor() as cur:
        for patients, at, urgent in batches:
            alerting_queue.enqueue(cur, patients, at, urgent)
    conn.commit()


def test_a_bounded_pass_coalesces_all_rows_and_puts_the_rest_back_as_one_row(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    s = dt.timedelta(seconds=1)
    _enqueue_at(queue_db, ([3, 4], T0 + 5 * s, []), ([1, 3], T0 + 2 * s, []),
                ([2], T0 + 1 * s, []), ([4, 5], T0 + 3 * s, []), ([1], T0 + 9 * s, []))
    hook = RecordingHook()
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW, budget=2, adapt=False)
    try:
        result = evaluator.run_once()
    finally:
        evaluator.close()
    assert result is not None
    # Oldest earliest receipts first: 2 (1 s), then 1 (2 s, its later row coalesced).
    assert hook.calls == [[1, 2]]
    assert (result.patients, result.rows, result.leftover) == (2, 5, 3)
    [(_, patients, received_at, urgent, receipts)] = _rows(queue_db)
    assert patients == [3, 4, 5]
    # Each leftover patient keeps its earliest receipt: 3 from its 2 s row, not its 5 s one.
    assert receipts == [T0 + 2 * s, T0 + 3 * s, T0 + 3 * s]
    assert received_at == T0 + 2 * s
    assert urgent == []
    assert _evaluated(queue_db) == [1, 2]


def test_red_patients_go_first_and_keep_it_in_the_leftover(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    s = dt.timedelta(seconds=1)
    with queue_db.cursor() as cur:
        alerting_queue.enqueue(cur, [1, 2], T0, [1, 2])
        alerting_queue.enqueue(cur, [5, 6], T0 + s, [5, 6], [5, 6])
    queue_db.commit()
    hook = RecordingHook()
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW, budget=1, adapt=False)
    try:
        evaluator.run_once()
        assert hook.calls == [[5]]
        row = queue_db.execute("SELECT patient_ids, urgent_ids, red_ids FROM alerting_queue"
                               ).fetchone()
        queue_db.commit()
        assert row == ([1, 2, 6], [1, 2, 6], [6])
        evaluator.run_once()
        assert hook.calls[-1] == [6]
    finally:
        evaluator.close()


def test_urgent_patients_go_first_and_keep_their_urgency_in_the_leftover(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    s = dt.timedelta(seconds=1)
    _enqueue_at(queue_db, ([1, 2], T0, []), ([7, 8, 9], T0 + 5 * s, [7, 8, 9]))
    hook = RecordingHook()
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW, budget=2, adapt=False)
    try:
        evaluator.run_once()
        assert hook.calls == [[7, 8]]  # urgent before the older ordinary ones
        [(_, patients, _, urgent, _)] = _rows(queue_db)
        assert (patients, urgent) == ([1, 2, 9], [9])
        evaluator.run_once()
        assert hook.calls[-1] == [1, 9]  # 9 still urgent, then the oldest ordinary one
    finally:
        evaluator.close()


def test_held_patients_wait_their_hold_and_a_pass_with_nothing_due_writes_nothing(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    fresh = dt.datetime.now(dt.UTC)
    _enqueue_at(queue_db, ([1, 2], fresh, []), ([3], fresh, [3]))
    before = _rows(queue_db)
    hook = RecordingHook()
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW, hold_s=600)
    try:
        result = evaluator.run_once()
        assert hook.calls == [[3]]  # urgent: no hold
        assert result is not None
        assert result.leftover == 2
        left = _rows(queue_db)
        assert [r[1] for r in left] == [[1, 2]]
        assert evaluator.run_once() is None  # 1 and 2 are held: nothing due
        assert _rows(queue_db) == left  # and the rows are untouched (same id)
        assert evaluator.next_due is not None
        assert evaluator.next_due > fresh + dt.timedelta(seconds=599)
        assert evaluator.drain() == 2  # drain does not hold
    finally:
        evaluator.close()
    assert before != left
    assert alerting_queue.depth(queue_db) == 0
    assert _evaluated(queue_db) == [1, 2, 3]


def test_a_crash_mid_pass_puts_every_row_back_as_it_was(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    s = dt.timedelta(seconds=1)
    _enqueue_at(queue_db, ([1, 2], T0, [2]), ([2, 3], T0 + s, []), ([4], T0 + 2 * s, []))
    before = _rows(queue_db)
    gate = threading.Event()
    hook = RecordingHook(block=gate)
    evaluator = Evaluator(db_url, hook, clock=lambda: NOW, budget=2, adapt=False)
    errors = _crash_mid_pass(queue_db, evaluator, hook, gate)
    assert errors, "the pass should have lost its connection"
    assert _rows(queue_db) == before  # no row lost, no leftover row written
    assert _evaluated(queue_db) == []
    retry = Evaluator(db_url, RecordingHook(), clock=lambda: NOW)
    try:
        assert retry.drain() == 4
    finally:
        retry.close()
    assert _evaluated(queue_db) == [1, 2, 3, 4]  # each once


def test_two_evaluators_share_the_queue_without_waiting(
        queue_db: psycopg.Connection[Any], db_url: str) -> None:
    _enqueue_at(queue_db, ([1], T0, []))
    gate = threading.Event()
    first_hook = RecordingHook(block=gate)
    first = Evaluator(db_url, first_hook, clock=lambda: NOW)
    worker = threading.Thread(target=first.run_once)
    worker.start()
    second = Evaluator(db_url, RecordingHook(), clock=lambda: NOW)
    try:
        assert first_hook.entered.wait(10)
        _enqueue_at(queue_db, ([2], T0, []))
        started = time.monotonic()
        result = second.run_once()  # skips the row the first holds, takes the new one
        assert time.monotonic() - started < 5
        assert result is not None
        assert result.patients == 1
    finally:
        gate.set()
        worker.join(10)
        first.close()
        second.close()
    assert _evaluated(queue_db) == [1, 2]
    assert alerting_queue.depth(queue_db) == 0


def test_the_leftover_row_keeps_every_receipt_to_the_microsecond(
        queue_db: psycopg.Connection[Any]) -> None:
    """settle writes its arrays as literals the server casts (issue 14): what lock_waiting
    reads back is what it was given, whatever the session's time zone."""
    queue_db.execute("SET TimeZone = 'Asia/Kolkata'")
    kolkata = queue_db.execute("SELECT %s::timestamptz", (T0,)).fetchone()
    assert kolkata is not None
    assert kolkata[0].utcoffset() == dt.timedelta(hours=5, minutes=30)
    receipts = {pid: T0 + dt.timedelta(seconds=pid, microseconds=pid * 7919 % 1_000_000)
                for pid in range(1, 1201)}
    receipts[5] = kolkata[0]  # a receipt loaded in another zone: the same instant
    waiting = alerting_queue.Waiting((), receipts, frozenset({2, 3, 900}), frozenset({3}), ())
    alerting_queue.settle(queue_db, waiting, sorted(receipts))
    queue_db.commit()
    back = alerting_queue.lock_waiting(queue_db, 10)
    queue_db.commit()
    assert back.receipts == receipts
    assert (back.urgent, back.red) == (frozenset({2, 3, 900}), frozenset({3}))
    assert back.received_at == (T0,)
