"""Faults appear at their configured rates, are all in ground truth, and decode as expected.

Every message is checked with the gateway's own decoder (`gateway.decode`): a clean message
decodes with no problem, a malformed one is refused with the reason ground truth predicted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from gateway.contract import RejectReason
from gateway.decode import DecodedMessage, DecodedStatus, Limits, Rejection, decode
from simulators import malformed
from simulators.devices import Outbound
from simulators.engine import Engine
from simulators.groundtruth import GroundTruth, instant
from simulators.scenario import Scenario, load
from ward.commands.simulate import news2_total

SPAN = dt.timedelta(hours=8)


@pytest.fixture(scope="module")
def noisy() -> tuple[Scenario, list[Outbound], list[dict[str, Any]]]:
    scenario = load("noisy-devices")
    truth = GroundTruth(keep=True, scorer=news2_total)
    messages = list(Engine(scenario, duration=SPAN, truth=truth).messages())
    assert truth.events is not None
    return scenario, messages, truth.events


def _by(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def _device(topic: str) -> str:
    return topic.split("/")[3]


def test_per_message_faults_come_at_their_configured_rates(noisy: Any) -> None:
    scenario, messages, events = noisy
    faults = scenario.faults
    readings = [m for m in messages if not m.topic.endswith("/status")]
    sends = len(readings) - len(_by(events, "duplicate"))  # first copies only
    assert sends > 10_000
    # Late is decided first, then out of order, on messages sent while online.
    online = sends - len(_by(events, "store_and_forward"))
    expected = {
        "duplicate": faults.duplicate * sends,
        "malformed": faults.malformed * sends,
        "late": faults.late * online,
        "out_of_order": (1 - faults.late) * faults.out_of_order * online,
    }
    for name, want in expected.items():
        got = len(_by(events, name))
        assert want * 0.75 <= got <= want * 1.25, (name, got, want)


def test_per_device_faults_come_at_their_configured_rates(noisy: Any) -> None:
    scenario, messages, events = noisy
    n_devices = sum(len(p.devices) for p in Engine(scenario, duration=SPAN).patients)
    drift = _by(events, "clock_drift")
    assert scenario.faults.clock_drift * n_devices * 0.65 <= len(drift) <= (
        scenario.faults.clock_drift * n_devices * 1.35)
    assert any(e["beyond_tolerance"] for e in drift)
    assert any(not e["beyond_tolerance"] for e in drift)
    spells = len(_by(events, "offline"))
    expected_spells = scenario.faults.offline_spell * n_devices * SPAN.total_seconds() / 3600
    assert expected_spells * 0.6 <= spells <= expected_spells * 1.2  # offline time has no spells
    assert _by(events, "battery_flat"), "fast-draining batteries go flat within hours"
    assert _by(events, "store_and_forward")
    offline_status = [m for m in messages if m.topic.endswith("/status")
                      and m.payload == b'{"online":false}']
    assert len(offline_status) == spells + len(_by(events, "battery_flat"))


def test_every_malformed_kind_appears_and_is_recorded(noisy: Any) -> None:
    _, _, events = noisy
    kinds = Counter(e["kind"] for e in _by(events, "malformed"))
    assert set(kinds) == {k.value for k in malformed.Kind}


def test_every_message_decodes_as_ground_truth_says(noisy: Any) -> None:
    _, messages, events = noisy
    broken = {(e["device_id"], e["at"]): e for e in _by(events, "malformed")}
    future = {e["msg_id"] for e in _by(events, "future_timestamp")}
    seen_broken = 0
    resent: dict[bytes, dict[str, Any]] = {}
    for m in messages:
        now = dt.datetime.fromtimestamp(m.at, dt.UTC)  # the gateway receives it on delivery
        result = decode(m.topic, m.payload, now, Limits())
        if m.topic.endswith("/status"):
            assert isinstance(result, DecodedStatus), m
            continue
        fault = broken.get((_device(m.topic), instant(m.at))) or resent.get(m.payload)
        if fault is not None:
            resent[m.payload] = fault  # a duplicate of a broken message is the same bytes
            seen_broken += 1
            reasons = ({p.reason for p in result.problems}
                       if isinstance(result, Rejection | DecodedMessage) else set())
            if fault["future"] and RejectReason.FUTURE_TIMESTAMP in reasons:
                continue  # a wrong clock and a broken body: either reason is right
            assert RejectReason(fault["expected"]) in reasons, (fault, result)
            if fault["partial"]:
                assert isinstance(result, DecodedMessage)
                assert result.readings
            else:
                assert isinstance(result, Rejection) or not result.readings, (fault, result)
            continue
        assert isinstance(result, DecodedMessage), (m, result)
        if result.msg_id in future:
            assert {p.reason for p in result.problems} == {RejectReason.FUTURE_TIMESTAMP}
        else:
            assert result.problems == (), (m, result.problems)
            assert result.readings
    assert seen_broken >= len(broken)  # every recorded one was seen (and its duplicates)


def test_ground_truth_has_deteriorations_and_true_news2_crossings() -> None:
    scenario = load("deteriorations")
    truth = GroundTruth(keep=True, scorer=news2_total)
    engine = Engine(scenario, duration=dt.timedelta(hours=30), truth=truth)
    for _ in engine.messages():
        pass
    assert truth.events is not None
    starts = _by(truth.events, "deterioration_start")
    assert len(starts) == 20  # 14 sepsis + 6 COPD, all with onset within 16 h
    crossed5 = {e["patient_key"]: e["at"] for e in _by(truth.events, "news2_crossed_5")}
    crossed7 = {e["patient_key"]: e["at"] for e in _by(truth.events, "news2_crossed_7")}
    for start in starts:
        key = start["patient_key"]
        assert key in crossed5, start
        assert crossed5[key] > start["at"]
        if key in crossed7:
            assert crossed7[key] >= crossed5[key]
    assert len(crossed7) >= len(starts) // 2
    summary = _by(truth.events, "summary")[-1]
    assert summary["messages"] == engine.sent
    for e in truth.events:
        assert {"event", "at"} <= set(e)
        if e["event"] in ("deterioration_start", "news2_crossed_5", "news2_crossed_7"):
            assert e["patient_key"].startswith("999")
