"""alerting.pass_plan: which waiting patients a pass evaluates (pure)."""

from __future__ import annotations

import datetime as dt

from alerting.pass_plan import next_budget, plan_pass

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def test_urgent_first_then_due_oldest_first_within_the_budget() -> None:
    receipts = {1: NOW - 5 * S, 2: NOW - 4 * S, 3: NOW - 1 * S, 4: NOW - 0.1 * S}
    plan = plan_pass(receipts, {4}, NOW, budget=2, hold_s=2.0)
    assert plan.evaluate == (1, 4)
    assert plan.leftover == (2, 3)
    assert plan.next_due == NOW - 1 * S + 2 * S  # 3 falls due then


def test_nothing_due_evaluates_nothing() -> None:
    plan = plan_pass({1: NOW - 0.5 * S}, set(), NOW, budget=10, hold_s=2.0)
    assert plan.evaluate == ()
    assert plan.leftover == (1,)
    assert plan.next_due == NOW + 1.5 * S


def test_no_hold_takes_everything_within_the_budget() -> None:
    plan = plan_pass(dict.fromkeys(range(5), NOW), set(), NOW, budget=3, hold_s=0.0)
    assert plan.evaluate == (0, 1, 2)
    assert plan.leftover == (3, 4)
    assert plan.next_due is None


def test_budget_follows_the_cost_of_a_full_pass() -> None:
    # 80 patients in 0.16 s: twice the target of 0.08 s → half-way to 40.
    assert next_budget(80, 80, 0.16, target_s=0.08, smallest=20, largest=2000) == 60
    # A pass smaller than its budget cannot show that a larger one would fit.
    assert next_budget(80, 10, 0.001, target_s=0.08, smallest=20, largest=2000) == 80
    assert next_budget(80, 80, 100.0, target_s=0.08, smallest=20, largest=2000) == 40
    assert next_budget(30, 30, 100.0, target_s=0.08, smallest=20, largest=2000) == 20


def test_red_patients_go_before_older_urgent_ones() -> None:
    receipts = {1: NOW - 5 * S, 2: NOW - 4 * S, 3: NOW - 0.1 * S}
    plan = plan_pass(receipts, {1, 2, 3}, NOW, budget=2, hold_s=2.0, red={3})
    assert plan.evaluate == (1, 3)
    assert plan.leftover == (2,)
