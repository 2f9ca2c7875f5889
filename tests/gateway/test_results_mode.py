"""`VW_GATEWAY_RESULTS=problems`: a clean accept goes unanswered; everything else is answered."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.contract import ResultStatus, readings_topic
from gateway.decode import Limits, decode
from gateway.pipeline import plan_batch, result_for, stored_of
from ward.db.registry import DeviceRecord
from ward.domain.devices import Assignment, Device, DeviceKind

NOW = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)
T = "2026-11-24T09:14:00Z"
RECORD = DeviceRecord(Device("d1", DeviceKind.PULSE_OXIMETER), (
    Assignment("d1", 7, NOW - dt.timedelta(days=1)),))


def _payload(*readings: dict[str, object]) -> bytes:
    return json.dumps({"msg_id": "m", "sent_at": T, "readings": list(readings)}).encode()


GOOD = {"code": "spo2", "value": 94, "unit": "%", "measured_at": T}
BAD = {"code": "pulse", "value": 999, "unit": "/min", "measured_at": T}


@pytest.mark.parametrize(("readings", "stored", "answered", "status"), [
    ((GOOD,), True, False, None),  # clean accept: the PUBACK says it
    ((GOOD,), False, True, ResultStatus.DUPLICATE),  # nothing new: say so
    ((GOOD, BAD), True, True, ResultStatus.ACCEPTED),  # partial: the errors matter
    ((BAD,), False, True, ResultStatus.REJECTED),
])
def test_problems_only_answers_all_but_clean_accepts(
        readings: tuple[dict[str, object], ...], stored: bool, answered: bool,
        status: ResultStatus | None) -> None:
    payload = _payload(*readings)
    decoded = decode(readings_topic("d1"), payload, NOW, Limits())
    plan = plan_batch([(readings_topic("d1"), payload, NOW, decoded)], lambda _id: RECORD)
    new = stored_of(plan, [stored] * len(plan.readings)).outcomes[0]
    result = result_for(plan.outcomes[0], new, problems_only=True)
    assert (result is not None) is answered
    if result is not None:
        assert result.status is status
    # The v1 default answers every message, the clean accept too.
    assert result_for(plan.outcomes[0], new) is not None


def test_the_default_answers_problems_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ward.settings import Settings

    monkeypatch.delenv("VW_GATEWAY_RESULTS", raising=False)
    assert Settings().gateway_results == "problems"
    monkeypatch.setenv("VW_GATEWAY_RESULTS", "all")
    assert Settings().gateway_results == "all"


def test_queued_results_stay_bounded() -> None:
    """Results the broker has not taken yet wait in paho's queue: at most RESULTS_QUEUED of
    them (~2 KiB each), the rest dropped and counted (here: no connection at all)."""
    from gateway.mqtt import RESULTS_QUEUED, MqttLink, broker_address

    link = MqttLink(broker_address("mqtt://127.0.0.1:9"), client_id="bounded", share_group="",
                    receive_maximum=10, session_expiry_s=0)
    sent = 5_000
    kept = sum(link.publish("vw/v1/devices/d1/results", b"{}", 1) for _ in range(sent))
    assert len(link._client._out_messages) == kept == RESULTS_QUEUED <= 2_000
    assert link.results_dropped == sent - kept


def test_a_clean_batch_under_problems_wakes_no_network_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to publish, so no burst and no wake-up byte (a system call per batch)."""
    from gateway.ingest import Gateway
    from ward.settings import Settings

    monkeypatch.setenv("VW_GATEWAY_RESULTS", "problems")
    gateway = Gateway(Settings(), client_id="wake-test")
    sent: list[bytes] = []

    class Wake:
        def send(self, data: bytes) -> int:
            sent.append(data)
            return len(data)

        def close(self) -> None:  # paho closes its socket pair when the client goes
            pass

    client: object = gateway.link._client
    client._wake_socket = Wake()  # type: ignore[attr-defined]
    payload = _payload(GOOD)
    decoded = decode(readings_topic("d1"), payload, NOW, Limits())
    plan = plan_batch([(readings_topic("d1"), payload, NOW, decoded)], lambda _id: RECORD)
    gateway._answer(plan, stored_of(plan, [True]))
    assert sent == []
    gateway._answer(plan, stored_of(plan, [False]))  # a duplicate is answered: one burst, one wake-up
    assert len(sent) == 1
