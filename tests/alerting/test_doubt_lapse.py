"""A doubtful spot reading's doubt lapses unrepeated, and then it is scored as measured; and a
doubt never holds back a red score (``artefacts.holds``).

The safety gaps these close: a doubtful SpO2 jump asked for a repeat instead of raising, but a
repeat that never came (a patient who does not answer, a night when none is asked for) left
the reading unscored for good — read as the previous, normal one; and a doubtful reading whose
score was red (a single 3, or a total ≥ 5: NEWS2's urgent response) waited 30 min for a repeat.
A doubt that holds is one whose score stays in NEWS2's low band: SpO2 97 → 93 % (2 points).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from alerting import artefacts, news2, replay, rules, scheduler
from alerting.candidates import Clear, Evidence, Firing, Kind
from alerting.care_plan import CarePlan
from alerting.observations import Latest
from alerting.policy import Policy
from alerting.requests import RequestConfig
from alerting.runner import evaluate_after_commit
from alerting.snapshot import PatientSnapshot

DAY = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)  # 10:00 London (winter)
NIGHT = dt.datetime(2026, 1, 12, 20, 0, tzinfo=dt.UTC)  # the doubt comes at 23:00 London
NORMAL = {"spo2": 97, "pulse": 70, "resp_rate": 16, "temperature": 36.8, "systolic_bp": 125,
          "on_oxygen": 0, "consciousness": 0}
THEN = dt.timedelta(hours=3)
LAPSE = artefacts.DOUBT_LAPSE


def test_the_lapse_is_the_repeats_due_time() -> None:
    assert RequestConfig().answer_within == artefacts.DOUBT_LAPSE


# -- pure ---------------------------------------------------------------------------------

def _snapshot(spo2_now: float, *, repeat: float | None = None) -> PatientSnapshot:
    """NORMAL 3 h before T; then SpO2 ``spo2_now`` alone at T (and ``repeat`` at T + 10 min)."""
    t = DAY + THEN
    spo2 = [Evidence(DAY, "spo2", "ox", 97.0), Evidence(t, "spo2", "ox", spo2_now)]
    if repeat is not None:
        spo2.append(Evidence(t + dt.timedelta(minutes=10), "spo2", "ox", repeat))
    recent = {"spo2": tuple(spo2), "pulse": (Evidence(DAY, "pulse", "ox", 70.0),)}
    latest = {c: Latest(c, DAY, float(v), "kit") for c, v in NORMAL.items()}
    latest["spo2"] = Latest("spo2", spo2[-1].measured_at, spo2[-1].value, "ox")
    return PatientSnapshot(1, latest, CarePlan(1), recent=recent)


@pytest.mark.parametrize(("after", "doubtful"), [
    (dt.timedelta(0), True),
    (LAPSE - dt.timedelta(seconds=1), True),  # held back until the repeat is due
    (LAPSE, False),  # then scored as measured: never read as the previous, normal one
    (LAPSE + dt.timedelta(hours=2), False),
])
def test_a_doubt_lapses_at_the_repeats_due_time(after: dt.timedelta, doubtful: bool) -> None:
    now = DAY + THEN + after
    evaluation = rules.evaluate(_snapshot(93.0), now)
    assert bool(evaluation.doubtful) is doubtful
    assert bool(evaluation.lapsed) is not doubtful
    target = evaluation.by_kind()[Kind.SPO2_BELOW_TARGET]
    assert isinstance(target, Clear) is doubtful
    assert evaluation.observation_set.observations.spo2 == (97 if doubtful else 93)


def test_a_lapsed_doubt_of_a_stale_reading_is_not_rescored() -> None:
    # SpO2 goes stale after 4 h: nothing is left to score, and the sweep must not re-run for it
    evaluation = rules.evaluate(_snapshot(93.0), DAY + THEN + dt.timedelta(hours=4, minutes=1))
    assert evaluation.lapsed == ()


def test_unscored_lapse_is_true_only_until_a_score_is_stored_after_the_lapse() -> None:
    (doubt,) = rules.evaluate(_snapshot(93.0), DAY + THEN).doubtful
    lapse = doubt.lapses_at
    assert lapse == DAY + THEN + LAPSE
    assert artefacts.unscored_lapse([doubt], None)
    assert artefacts.unscored_lapse([doubt], DAY + THEN)  # scored while still doubtful
    assert not artefacts.unscored_lapse([doubt], lapse)
    assert not artefacts.unscored_lapse([], None)


@pytest.mark.parametrize(("repeat", "fires"), [(93.0, True), (97.0, False)])
def test_a_repeat_still_confirms_or_refutes_before_the_lapse(repeat: float, fires: bool) -> None:
    now = DAY + THEN + dt.timedelta(minutes=10)
    evaluation = rules.evaluate(_snapshot(93.0, repeat=repeat), now)
    assert evaluation.doubtful == ()
    assert isinstance(evaluation.by_kind()[Kind.SPO2_BELOW_TARGET], Firing) is fires
    # ...and after the doubtful reading's lapse nothing changes: the repeat is the latest
    later = rules.evaluate(_snapshot(93.0, repeat=repeat), DAY + THEN + LAPSE * 2)
    assert later.lapsed == ()
    assert isinstance(later.by_kind()[Kind.SPO2_BELOW_TARGET], Firing) is fires


def test_replay_raises_the_unrepeated_doubt_by_its_sweep() -> None:
    t = DAY + THEN
    readings = [replay.ReplayReading("p", c, DAY, float(v), "kit") for c, v in NORMAL.items()]
    readings.append(replay.ReplayReading("p", "spo2", t, 93.0, "kit"))
    # the patient's data goes on (a temperature reading at t + 2 h) so sweeps run over them
    readings.append(replay.ReplayReading("p", "temperature", t + dt.timedelta(hours=2), 36.8,
                                         "kit"))
    report = replay.run(readings, {}, sweep_every=dt.timedelta(minutes=15))
    target = [r for r in report.raised if r.kind == "spo2_below_target"]
    assert target, report.raised
    assert t + LAPSE <= target[0].at <= t + LAPSE + dt.timedelta(minutes=15)


# -- on the real PostgreSQL, through the scheduler's sweep --------------------------------

def _clinical(conn: psycopg.Connection[Any], pid: int) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT f.kind FROM alert_findings f JOIN alerts a ON a.id = f.alert_id "
        "WHERE a.patient_id = %s AND a.state <> 'resolved' AND f.cleared_at IS NULL "
        "AND f.kind IN ('news2', 'single_parameter_3', 'spo2_below_target')", (pid,))}


def _tasks(conn: psycopg.Connection[Any], pid: int) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT reason, status FROM tasks WHERE patient_id = %s AND kind = 'full_set' "
        "ORDER BY id", (pid,))]


def _scores(conn: psycopg.Connection[Any], pid: int) -> int:
    row = conn.execute("SELECT count(*) FROM scores WHERE patient_id = %s",
                       (pid,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(("start", "requested"), [
    (DAY, [("doubtful_reading", "missed")]),  # asked for a repeat that never came
    (NIGHT, []),  # at night a repeat is not even asked for
], ids=["day", "night"])
def test_an_unrepeated_doubtful_reading_alerts_by_the_sweep_after_the_lapse(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any, start: dt.datetime, requested: list[tuple[str, str]]) -> None:
    (pid,) = add_patients(db, 1, start - dt.timedelta(days=1))
    write_readings(db, readings(pid, start, **NORMAL))
    evaluate_after_commit(db, [pid], start, policy=policy)
    t = start + THEN
    write_readings(db, readings(pid, t, spo2=93))  # alone, 4 points down: doubtful, low band
    evaluate_after_commit(db, [pid], t, policy=policy)
    assert _clinical(db, pid) == set()
    scheduler.sweep(db, policy, t + LAPSE - dt.timedelta(minutes=1))
    assert _clinical(db, pid) == set()  # still waiting for the repeat
    scheduler.sweep(db, policy, t + LAPSE + dt.timedelta(seconds=15))
    # no new reading: the sweep scored the reading as measured (SpO2 93: below target 94)
    assert _clinical(db, pid) == {"spo2_below_target"}
    assert _tasks(db, pid) == requested
    stored = _scores(db, pid)
    for minutes in (1, 10):  # the re-run ends once a score after the lapse is stored
        scheduler.sweep(db, policy, t + LAPSE + dt.timedelta(minutes=minutes))
    assert _scores(db, pid) == stored


@pytest.mark.parametrize(("repeat", "fires"), [(93, True), (97, False)],
                         ids=["confirms", "refutes"])
def test_a_repeat_confirms_or_refutes_on_the_real_database(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any, repeat: float, fires: bool) -> None:
    (pid,) = add_patients(db, 1, DAY - dt.timedelta(days=1))
    write_readings(db, readings(pid, DAY, **NORMAL))
    evaluate_after_commit(db, [pid], DAY, policy=policy)
    t = DAY + THEN
    write_readings(db, readings(pid, t, spo2=93))
    evaluate_after_commit(db, [pid], t, policy=policy)
    again = t + dt.timedelta(minutes=10)
    write_readings(db, readings(pid, again, spo2=repeat))
    evaluate_after_commit(db, [pid], again, policy=policy)
    assert ("spo2_below_target" in _clinical(db, pid)) is fires
    scheduler.sweep(db, policy, t + LAPSE + dt.timedelta(minutes=1))  # nothing left to lapse
    assert ("spo2_below_target" in _clinical(db, pid)) is fires


# -- the SpO2 target's 15-min level keeps the lower middle of an even window ------------

def test_the_spo2_target_level_fires_on_half_a_quarter_hour_below_target() -> None:
    # A wearable's 15 min: 10 readings (an even window), half of them below the 94 % target.
    # Not an artefact (the 5-min filter rejects those): a sustained desaturation.
    now = DAY
    window = tuple(Evidence(now - dt.timedelta(minutes=1.5 * (9 - i)), "spo2", "wear",
                            92.0 if i % 2 else 96.0) for i in range(10))
    latest = {c: Latest(c, now, float(v), "kit") for c, v in NORMAL.items()}
    latest["spo2"] = Latest("spo2", now, window[-1].value, "wear")
    snapshot = PatientSnapshot(1, latest, CarePlan(1), recent={"spo2": window})
    evaluation = rules.evaluate(snapshot, now)
    assert isinstance(evaluation.by_kind()[Kind.SPO2_BELOW_TARGET], Firing)
    # while the 5-min filter, on its last 4 readings (a tie too), takes the upper middle
    assert evaluation.observation_set.observations.spo2 == 96


# -- a single carer-counted respiration rate <= 8 -----------------------------------------

def _rr(rr_then: float, rr_now: float, *, spo2_now: float = 97.0, acvpu: float = 0.0,
        repeat: float | None = None) -> PatientSnapshot:
    """NORMAL (RR ``rr_then``) 3 h before T; at T the carer's count ``rr_now`` with ACVPU
    ``acvpu`` (the home hub's set) and an oximeter SpO2 ``spo2_now``."""
    t = DAY + THEN
    rr = [Evidence(DAY, "resp_rate", "hub", rr_then), Evidence(t, "resp_rate", "hub", rr_now)]
    if repeat is not None:
        rr.append(Evidence(t + dt.timedelta(minutes=10), "resp_rate", "hub", repeat))
    recent = {"resp_rate": tuple(rr),
              "spo2": (Evidence(DAY, "spo2", "ox", 97.0), Evidence(t, "spo2", "ox", spo2_now))}
    latest = {c: Latest(c, DAY, float(v), "kit") for c, v in NORMAL.items()}
    latest["resp_rate"] = Latest("resp_rate", rr[-1].measured_at, rr[-1].value, "hub")
    latest["consciousness"] = Latest("consciousness", t, acvpu, "hub")
    latest["spo2"] = Latest("spo2", t, spo2_now, "ox")
    return PatientSnapshot(1, latest, CarePlan(1), recent=recent)


@pytest.mark.parametrize(("then", "now", "spo2", "acvpu", "doubtful"), [
    (16, 7, 97, 0, True),  # a slow count alone, after a normal one: a miscount until repeated
    (16, 8, 97, 0, True),
    (16, 9, 97, 0, False),  # not in the red band
    (10, 7, 97, 0, False),  # already slowing (previous count scored 1): it counts
    (16, 7, 93, 0, False),  # SpO2 down 4 with it: corroborated
    (16, 7, 97, 2, False),  # not Alert (V) in the same set: corroborated
])
def test_a_single_slow_carer_count_is_doubtful_and_scored_at_once(
        then: float, now: float, spo2: float, acvpu: float, doubtful: bool) -> None:
    # RR <= 8 scores 3 alone: NEWS2's urgent response, never held for a repeat
    evaluation = rules.evaluate(_rr(then, now, spo2_now=spo2, acvpu=acvpu), DAY + THEN)
    assert evaluation.doubtful == ()
    assert [d.code for d in evaluation.urgent] == (["resp_rate"] if doubtful else [])
    assert evaluation.observation_set.observations.resp_rate == now
    if doubtful:
        (doubt,) = evaluation.urgent
        assert "respiration rate" in doubt.reason
        assert isinstance(evaluation.by_kind()[Kind.NEWS2], Firing)


def test_a_slow_count_repeated_counts_and_one_unrepeated_is_already_scored() -> None:
    confirmed = rules.evaluate(_rr(16, 7, repeat=7), DAY + THEN + dt.timedelta(minutes=10))
    assert confirmed.doubtful == ()
    assert isinstance(confirmed.by_kind()[Kind.NEWS2], Firing)
    refuted = rules.evaluate(_rr(16, 7, repeat=15), DAY + THEN + dt.timedelta(minutes=10))
    assert isinstance(refuted.by_kind()[Kind.NEWS2], Clear)
    later = rules.evaluate(_rr(16, 7), DAY + THEN + LAPSE)
    assert later.urgent == later.doubtful == ()  # lapsed: scored as measured, as before
    assert later.observation_set.observations.resp_rate == 7
    assert isinstance(later.by_kind()[Kind.NEWS2], Firing)  # RR <= 8: 3 points, low-medium


@pytest.mark.parametrize(("start", "requested"), [
    (DAY, [("doubtful_reading", "open")]),  # the repeat is asked for, not waited for
    (NIGHT, []),  # 23:00 London: no repeat is asked for
], ids=["day", "night"])
def test_a_slow_count_alerts_at_once_and_still_asks_for_a_repeat(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any, start: dt.datetime, requested: list[tuple[str, str]]) -> None:
    (pid,) = add_patients(db, 1, start - dt.timedelta(days=1))
    write_readings(db, readings(pid, start, **NORMAL))
    evaluate_after_commit(db, [pid], start, policy=policy)
    t = start + THEN
    write_readings(db, readings(pid, t, resp_rate=7, consciousness=0))
    evaluate_after_commit(db, [pid], t, policy=policy)
    assert "news2" in _clinical(db, pid)
    assert _tasks(db, pid) == requested


# -- a doubt never holds back a red score ----------------------------------------------------

def _set(spo2_now: float, **others: float) -> PatientSnapshot:
    """NORMAL with ``others`` at DAY and again at T (unchanged, so nothing corroborates), and
    SpO2 97 at DAY then ``spo2_now`` at T."""
    t = DAY + THEN
    values = {**NORMAL, **others}
    recent = {c: (Evidence(DAY, c, "kit", float(v)), Evidence(t, c, "kit", float(v)))
              for c, v in values.items() if c != "spo2"}
    recent["spo2"] = (Evidence(DAY, "spo2", "kit", 97.0), Evidence(t, "spo2", "kit", spo2_now))
    latest = {c: Latest(c, es[-1].measured_at, es[-1].value, "kit") for c, es in recent.items()}
    return PatientSnapshot(1, latest, CarePlan(1), recent=recent)


@pytest.mark.parametrize(("spo2", "others", "held", "risk"), [
    (93, {}, True, "low"),  # 2 points, total 2: the low band, held for the repeat
    (93, {"pulse": 100}, True, "low"),  # total 3
    (93, {"pulse": 100, "temperature": 38.5}, True, "low"),  # total 4: still the low band
    (93, {"pulse": 115, "temperature": 38.5}, False, "medium"),  # total 5: urgent, at once
    (91, {}, False, "low_medium"),  # SpO2 3 points alone: a single red, at once
    (88, {}, False, "low_medium"),
    (93, {"systolic_bp": 88}, False, "medium"),  # another parameter's 3 (and total 5)
])
def test_a_doubt_holds_only_while_the_score_with_it_is_low(
        spo2: float, others: dict[str, float], held: bool, risk: str) -> None:
    evaluation = rules.evaluate(_set(spo2, **others), DAY + THEN)
    assert [d.code for d in evaluation.doubtful] == (["spo2"] if held else [])
    assert [d.code for d in evaluation.urgent] == ([] if held else ["spo2"])
    assert evaluation.observation_set.observations.spo2 == (97 if held else spo2)
    if not held:
        assert evaluation.score is not None
        assert evaluation.score.risk.value == risk
        assert isinstance(evaluation.by_kind()[Kind.NEWS2], Firing)


def test_the_hold_rule_is_news2s_low_band() -> None:
    # the score *with* the doubtful reading decides; RCP NEWS2 Chart 2's urgent triggers
    def held(**values: Any) -> bool:
        return artefacts.holds(news2.score(news2.Observations(**values)))
    assert held(spo2=93, pulse=100, temperature=38.5)  # 2 + 1 + 1 = 4
    assert not held(spo2=93, pulse=115, temperature=38.5)  # 5
    assert not held(resp_rate=7)  # a single 3
    assert not held(spo2=91)
    assert held(spo2=94, on_oxygen=True)  # 1 + 2 = 3, no single 3 (oxygen is never a 3)


def test_a_red_doubt_on_the_real_database_alerts_at_once_and_asks_for_a_repeat(
        db: psycopg.Connection[Any], policy: Policy, add_patients: Any, readings: Any,
        write_readings: Any) -> None:
    (pid,) = add_patients(db, 1, DAY - dt.timedelta(days=1))
    write_readings(db, readings(pid, DAY, **NORMAL))
    evaluate_after_commit(db, [pid], DAY, policy=policy)
    t = DAY + THEN
    write_readings(db, readings(pid, t, spo2=88))  # alone, 9 points down: doubtful, but red
    evaluate_after_commit(db, [pid], t, policy=policy)
    assert {"news2", "spo2_below_target"} <= _clinical(db, pid)
    assert _tasks(db, pid) == [("doubtful_reading", "open")]
