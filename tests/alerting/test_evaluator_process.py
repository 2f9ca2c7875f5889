"""`vward alerting` evaluates in a child process: killed mid-pass it loses nothing, is
replaced, and the reading raises its episode exactly once (issue 14)."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import signal
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from alerting import store, worker
from alerting.evaluator import Evaluator
from alerting.policy import policy_path
from alerting.runner import evaluate_after_commit
from ward.db import alerting_queue
from ward.settings import Settings

SICK = {"spo2": 90, "pulse": 125, "resp_rate": 26, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}  # NEWS2 3 + 2 + 3 = 8: high


def _child_pids(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"alerting evaluator process started pid=(\d+)", log)]


def _waiting_on_lock(db_url: str) -> bool:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vw-alerting-eval' "
            "AND wait_event_type = 'Lock' AND datname = current_database()").fetchone()
    return bool(row and row[0])


@dataclass
class HeldPass:
    """A running `vward alerting` whose evaluator child (`child`) has taken `patient` from the
    queue and waits, inside its pass's transaction, on that patient's evaluation lock, which
    the test's connection `db` holds."""

    db: psycopg.Connection[Any]
    patient: int
    service: Any
    child: int
    poll: Any

    def release(self) -> None:
        """Let go of the lock and wait until the queued patient is evaluated."""
        self.db.execute("SELECT pg_advisory_unlock(%s, %s)",
                        (store.patient_lock_key(self.db), self.patient))
        self.db.commit()

        def evaluated() -> bool:
            row = self.db.execute("SELECT count(*) FROM scores WHERE patient_id = %s",
                                  (self.patient,)).fetchone()
            self.db.commit()
            return bool(row and row[0]) and alerting_queue.depth(self.db) == 0

        self.poll(evaluated, 30, "the replacement to evaluate the queued patient")

    def one(self, query: str) -> Any:
        """The one row of `query` (with the patient as its parameter)."""
        row = self.db.execute(query, (self.patient,)).fetchone()
        self.db.commit()
        return row


RAISED = ("SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
          "WHERE a.patient_id = %s AND e.event = 'raised'")


def _start_alerting(start_service: Any, to_url: Any, db_url: str) -> Any:
    return start_service(["alerting", "--interval", "600"],
                         {"VW_DATABASE_URL": to_url(db_url), "VW_LOG_LEVEL": "INFO"},
                         ready="alerting evaluator listening", name="alerting")


@pytest.fixture
def held_pass(
    db: psycopg.Connection[Any], db_url: str, to_url: Any, start_service: Any, poll: Any,
    add_patients: Any, readings: Any, write_readings: Any,
) -> HeldPass:
    now = dt.datetime.now(dt.UTC)
    (pid,) = add_patients(db, 1, now - dt.timedelta(days=1))
    write_readings(db, readings(pid, now - dt.timedelta(seconds=30), **SICK))
    # This connection holds the patient's evaluation lock, so the evaluator's pass stops
    # inside its transaction: the queue row is taken (deleted, uncommitted) while it waits.
    db.execute("SELECT pg_advisory_lock(%s, %s)", (store.patient_lock_key(db), pid))
    with db.cursor() as cur:
        alerting_queue.enqueue(cur, [pid], now)  # as the gateway does after its commit
    db.commit()
    service = _start_alerting(start_service, to_url, db_url)
    poll(lambda: _waiting_on_lock(db_url), 30, "the evaluator to wait on the patient's lock")
    (child,) = _child_pids(service.log())
    return HeldPass(db, pid, service, child, poll)


def test_an_evaluator_killed_mid_pass_is_replaced_and_raises_the_episode_once(
    held_pass: HeldPass, poll: Any,
) -> None:
    service = held_pass.service
    os.kill(held_pass.child, signal.SIGKILL)
    poll(lambda: len(_child_pids(service.log())) == 2, 30, "the evaluator to be replaced")
    assert "exited (code -9); restarting" in service.log()
    held_pass.release()
    episodes = held_pass.db.execute("SELECT kind, severity FROM alerts WHERE patient_id = %s",
                                    (held_pass.patient,)).fetchall()
    held_pass.db.commit()
    assert episodes == [("news2", "high")]
    assert held_pass.one(RAISED) == (1,)
    # The killed pass stored nothing; its replacement stored it once.
    assert held_pass.one("SELECT count(*) FROM scores WHERE patient_id = %s") == (1,)
    assert service.process.poll() is None
    assert service.stop() == 0


def test_an_evaluator_stopped_mid_pass_rolls_back_and_exits_at_once(
    held_pass: HeldPass, poll: Any,
) -> None:
    """The supervisor's SIGTERM reaches a child whose pass waits (a long pass: here on a
    patient's lock): it abandons the pass at once instead of being killed 10 s later (the
    demo's stop logged "did not stop; killing it" on a loaded machine), and the patient it
    had taken is evaluated once by its replacement."""
    service = held_pass.service
    os.kill(held_pass.child, signal.SIGTERM)
    poll(lambda: "a pass in flight rolled back" in service.log(), 30,
         "the evaluator to abandon its pass")
    poll(lambda: len(_child_pids(service.log())) == 2, 30, "the evaluator to be replaced")
    held_pass.release()
    assert held_pass.one(RAISED) == (1,)
    assert service.stop() == 0


def test_stopping_vward_alerting_stops_its_evaluator(
    db_url: str, to_url: Any, start_service: Any, poll: Any,
) -> None:
    service = _start_alerting(start_service, to_url, db_url)
    (child,) = _child_pids(service.log())
    assert service.stop() == 0
    poll(lambda: not _alive(child), 15, "the evaluator process to end with its parent")
    assert "restarting" not in service.log()


def test_an_orphaned_evaluator_stops_by_itself(
    db_url: str, to_url: Any, start_service: Any, poll: Any,
) -> None:
    service = _start_alerting(start_service, to_url, db_url)
    (child,) = _child_pids(service.log())
    service.kill()  # SIGKILL: the parent cannot stop its child
    poll(lambda: not _alive(child), 15, "the orphaned evaluator to stop")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


# A test-only record of every queue row inserted and deleted, committed with the transaction
# that did it: a row taken by a pass that rolled back is not in `stop_taken`.
AUDIT = """
CREATE TABLE stop_queued (id bigint NOT NULL);
CREATE TABLE stop_taken (id bigint NOT NULL);
CREATE FUNCTION stop_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stop_queued VALUES (NEW.id);
        RETURN NEW;
    END IF;
    INSERT INTO stop_taken VALUES (OLD.id);
    RETURN OLD;
END $$;
CREATE TRIGGER stop_audit AFTER INSERT OR DELETE ON alerting_queue
    FOR EACH ROW EXECUTE FUNCTION stop_audit();
"""
STOPS = 20
# Lines that must never appear in the log of a stopped evaluator child: psycopg's own
# "error ignored in rollback" / "error ignored terminating" WARNINGs, a traceback, anything
# above INFO.
NOISE = re.compile(r"logger=psycopg|error ignored|Traceback")
LOUD = re.compile(r"level=(WARNING|ERROR|CRITICAL)")


def _taken(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM stop_taken").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(600)  # 20 child starts: about a minute here, four at a load of 10
def test_an_evaluator_whose_queue_always_has_work_stops_quietly_every_time(
    db: psycopg.Connection[Any], db_url: str, poll: Any, capfd: pytest.CaptureFixture[str],
    add_patients: Any, readings: Any, write_readings: Any,
) -> None:
    """Stopped again and again while passes follow one another (the queue is never empty),
    the evaluator child (`vward alerting`'s, run here by its supervisor `EvaluatorProcess`)
    either finishes its pass or abandons it with the pass's transaction rolled back, exits,
    and logs nothing above INFO; every queue row is either still queued or was taken by a pass
    that committed. The old stop raised KeyboardInterrupt wherever SIGTERM landed: inside
    psycopg's transaction or pipeline code it logged "error ignored in rollback" / "error
    ignored terminating" WARNINGs (a race, hence many stops, each at a random point)."""
    db.execute(AUDIT)
    db.commit()
    now = dt.datetime.now(dt.UTC)
    ids = add_patients(db, 200, now - dt.timedelta(days=1))
    write_readings(db, [r for pid in ids for r in readings(pid, now - dt.timedelta(seconds=30),
                                                           **SICK)])
    feeding = threading.Event()
    rng = random.Random(14)

    def feed() -> None:
        with psycopg.connect(db_url) as conn:
            while not feeding.is_set():
                with conn.cursor() as cur:  # ordinary rows, as the gateway writes them
                    alerting_queue.enqueue(cur, sorted(rng.sample(ids, 50)),
                                           dt.datetime.now(dt.UTC))
                conn.commit()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    noisy: list[list[str]] = []  # per stop
    settings = Settings(log_level="INFO")
    try:
        for _ in range(STOPS):
            before = _taken(db_url)
            child = worker.EvaluatorProcess(db_url, settings, str(policy_path()))
            child.start()
            poll(lambda b=before: _taken(db_url) > b, 60, "the evaluator to commit a pass")
            threading.Event().wait(rng.uniform(0, 0.1))  # a random point of a later pass
            child.stop()
            log = capfd.readouterr().err
            assert re.search(r"alerting evaluator pid=\d+: stopped", log), log
            noisy.append([line for line in log.splitlines()
                          if NOISE.search(line) or LOUD.search(line)])
    finally:
        feeding.set()
        feeder.join(10)
    loud = [lines for lines in noisy if lines]
    assert not loud, f"{len(loud)} of {STOPS} stops logged:\n" + "\n".join(line for lines in loud for line in lines)
    # Nothing lost: what the passes left is evaluated by one more, and every row queued was
    # taken exactly once by a pass that committed.
    last = Evaluator(db_url, evaluate_after_commit)
    try:
        last.drain()
    finally:
        last.close()
    queued = [r[0] for r in db.execute("SELECT id FROM stop_queued").fetchall()]
    taken = [r[0] for r in db.execute("SELECT id FROM stop_taken").fetchall()]
    db.commit()
    assert alerting_queue.depth(db) == 0
    assert len(taken) == len(set(taken))
    assert sorted(taken) == sorted(queued)
