"""Simulated risk facts and adherence: seeded, deterministic, and the documented assumptions."""

from __future__ import annotations

import datetime as dt

from simulators import risk as simrisk
from simulators.scenario import load
from simulators.ward import build_ward


def _ward(seed: int = 11):  # type: ignore[no-untyped-def]
    scenario = load("deteriorations")
    return scenario, build_ward(scenario, seed, scenario.start)


def test_same_seed_same_facts_and_adherence() -> None:
    scenario, ward = _ward()
    _, again = _ward()
    at = scenario.start + dt.timedelta(hours=3)
    for p, q in zip(ward, again, strict=True):
        a, b = simrisk.draw(p, 11), simrisk.draw(q, 11)
        assert a == b
        assert simrisk.set_done(a, p, 11, at) == simrisk.set_done(b, q, 11, at)
    other = [simrisk.draw(p, 12) for p in _ward(12)[1]]
    assert [simrisk.draw(p, 11).factors for p in ward] != [o.factors for o in other]


def test_prodrome_only_for_deteriorating_patients_and_only_when_asked() -> None:
    _, ward = _ward()
    for p in ward:
        on, off = simrisk.draw(p, 11), simrisk.draw(p, 11, prodrome=False)
        assert off.prodrome_from is None
        assert on.factors == off.factors
        if p.trajectory.deteriorates:
            assert on.prodrome_from is not None
            assert p.profile.onset is not None
            assert on.prodrome_from < p.profile.onset
            later = p.profile.onset + dt.timedelta(hours=1)
            assert simrisk.miss_probability(on, later) > simrisk.miss_probability(off, later)
        else:
            assert on.prodrome_from is None


def test_deteriorating_patients_carry_more_burden_on_average() -> None:
    _, ward = _ward()
    burden = {True: [], False: []}  # type: dict[bool, list[int]]
    for p in ward:
        f = simrisk.draw(p, 11).factors
        burden[p.trajectory.deteriorates].append(len(f.comorbidities)
                                                 + (f.admissions_12_months or 0))
    assert sum(burden[True]) / len(burden[True]) > sum(burden[False]) / len(burden[False])


def test_registered_simulated_patients_get_their_facts_and_scores(db_url: str) -> None:
    import psycopg

    from ward.commands.simulate import register_ward

    scenario = load("quiet-ward")
    patients = build_ward(scenario, scenario.seed, scenario.start)[:5]
    with psycopg.connect(db_url) as conn:
        report = register_ward(conn, scenario, patients, scenario.start)
        register_ward(conn, scenario, patients, scenario.start)  # idempotent
        conn.commit()
        facts = conn.execute("SELECT count(*) FROM risk_factors").fetchone()
        scores = conn.execute("SELECT count(*), min(stage), count(lace), count(hospital) "
                              "FROM readmission_scores").fetchone()
    assert report.patients_created == 5
    assert facts == (5,)
    assert scores == (5, "referral", 5, 5)
