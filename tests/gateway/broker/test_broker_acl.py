"""Device isolation on the production broker (issue 9, items 1, 2 and 5): a device with its
own credentials plays the attacker. It must not subscribe beyond its own results and status
(the broker refuses in the SUBACK), make another device's readings vanish through the
gateway's `$share` group, use any client id but its own (the gateway's above all), or reach
the plain listener from outside; a publish to another device's topic is never delivered.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from gateway.contract import (
    Measurement,
    commands_topic,
    encode_readings,
    readings_topic,
    results_topic,
    status_topic,
)

NOT_AUTHORIZED_V5 = 0x87
FAILURE_V311 = 0x80


# --- 1. subscriptions ----------------------------------------------------------------------

@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_device_may_subscribe_to_its_own_results_status_and_commands_only(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any, unique: str,
        v5: bool) -> None:
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secret = provision(ward, prod_broker, dev_a, dev_b)[dev_a]
    a = devices(dev_a, secret, v5=v5)
    assert not a.refused
    refused = NOT_AUTHORIZED_V5 if v5 else FAILURE_V311
    for topic in ("#", "+/#", "vw/#", "vw/v1/devices/+/readings", "vw/v1/devices/+/results",
                  results_topic(dev_b), status_topic(dev_b), commands_topic(dev_b),
                  "vw/v1/devices/+/commands", readings_topic(dev_a),
                  "$share/vw-gateway/vw/v1/devices/+/readings",
                  f"$share/vw-gateway/{readings_topic(dev_b)}",
                  f"$share/{dev_a}/{results_topic(dev_a)}", "$SYS/#",
                  "$CONTROL/dynamic-security/v1/response"):
        assert a.subscribe(topic) == refused, topic
    assert a.subscribe(results_topic(dev_a)) == 1
    assert a.subscribe(status_topic(dev_a)) == 1
    assert a.subscribe(commands_topic(dev_a)) == 1
    # Nor may A connect under another client id, whatever the protocol version.
    assert devices(dev_a, secret, client_id=dev_b, v5=v5).refused
    assert devices(dev_a, secret, client_id="vw-gateway-1", v5=v5).refused


def test_a_device_cannot_make_another_devices_readings_vanish(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any, unique: str,
        start_gateway: Any, poll: Any) -> None:
    """Issue 9.1: A joins the gateway's share group; every one of B's readings is stored."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw = start_gateway(ward.url, prod_broker.plain_url, group="vw-gateway",
                       **prod_broker.gateway_creds())
    a = devices(dev_a, secrets[dev_a])
    for channel in ("readings", "senml", "status"):
        assert a.subscribe(f"$share/vw-gateway/vw/v1/devices/+/{channel}") == NOT_AUTHORIZED_V5
    b = devices(dev_b, secrets[dev_b])
    for i in range(20):
        assert b.publish(readings_topic(dev_b), reading(f"b-{i}", i)) == 0
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev_b) == 20,
         20, "all 20 of B's readings")
    assert not a.messages
    assert gw.stop() == 0


# --- 2. client ids -------------------------------------------------------------------------

def test_a_device_cannot_take_the_gateways_session(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any, unique: str,
        start_gateway: Any, poll: Any) -> None:
    """Issue 9.2: with the gateway stopped, A connects with the gateway's client id; the
    broker refuses it, and the readings queued for the gateway's session all arrive."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw_id = f"vw-gateway-{unique}"
    # A plain subscription: its session survives the gateway's stop (Mosquitto keeps it).
    gw = start_gateway(ward.url, prod_broker.plain_url, client_id=gw_id,
                       VW_MQTT_SHARE_GROUP="", **prod_broker.gateway_creds())
    assert gw.stop() == 0
    b = devices(dev_b, secrets[dev_b])
    for i in range(10):
        assert b.publish(readings_topic(dev_b), reading(f"queued-{i}", i)) == 0
    for client_id in (gw_id, dev_b, f"{dev_a}-2"):
        attacker = devices(dev_a, secrets[dev_a], client_id=client_id)
        assert attacker.refused, client_id
        assert attacker.connack.value == NOT_AUTHORIZED_V5
    # An empty id (the broker would make one up) is refused too.
    assert devices(dev_a, secrets[dev_a], client_id="").refused
    # Nor can a device present the gateway's username with its own secret.
    assert devices("vw-gateway", secrets[dev_a], client_id=gw_id).refused
    gw = start_gateway(ward.url, prod_broker.plain_url, client_id=gw_id,
                       VW_MQTT_SHARE_GROUP="", **prod_broker.gateway_creds())
    poll(lambda: ward.count("SELECT count(*) FROM readings WHERE device_id = %s", dev_b) == 10,
         20, "the 10 readings queued for the gateway")
    assert "session_present=True" in gw.log()
    assert gw.stop() == 0



# --- 5. listeners and cross-device publishes ------------------------------------------------

def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for UDP connect
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_plain_listener_serves_loopback_only(prod_broker: Any) -> None:
    conf = (prod_broker.folder / "mosquitto.conf").read_text()
    assert f"listener {prod_broker.plain_port} 127.0.0.1\n" in conf
    # (The compose layout binds it inside the broker's container instead: test_compose.py.)
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises((ConnectionRefusedError, TimeoutError)), \
            socket.create_connection((outside, prod_broker.plain_port), 2):
        pass
    with socket.create_connection(("127.0.0.1", prod_broker.plain_port), 2):
        pass


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_cross_device_publish_is_dropped_and_answered_per_protocol(
        prod_broker: Any, provision: Any, devices: Callable[..., Any], ward: Any, unique: str,
        start_gateway: Any, poll: Any, v5: bool) -> None:
    """What docs/mqtt.md says, measured: MQTT 5 gets PUBACK 0x87 (not authorized), MQTT
    3.1.1 a plain PUBACK (the protocol has no reason code); then Mosquitto 2.0.11 closes the
    connection (with `max_queued_messages 0` its bad-publish path always reports "quota
    exceeded"); the gateway never sees the forged message."""
    dev_a, dev_b = f"a-{unique}", f"b-{unique}"
    ward.add(dev_a)
    ward.add(dev_b)
    secrets = provision(ward, prod_broker, dev_a, dev_b)
    gw = start_gateway(ward.url, prod_broker.plain_url, **prod_broker.gateway_creds())
    forger = devices(dev_a, secrets[dev_a], v5=v5)
    assert forger.publish(readings_topic(dev_b), reading("forged")) == (
        NOT_AUTHORIZED_V5 if v5 else 0)
    poll(lambda: forger.dropped, 10, "the broker to close the forger")
    forger.close()
    a = devices(dev_a, secrets[dev_a], v5=v5)
    assert a.subscribe(results_topic(dev_a)) == 1
    assert a.publish(readings_topic(dev_a), reading("own")) == 0
    poll(lambda: any(json.loads(p).get("msg_id") == "own" for _, p in a.messages), 20,
         "A's own result")
    assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'forged'") == 0
    assert ward.count("SELECT count(*) FROM rejected_messages WHERE msg_id = 'forged'") == 0
    assert ward.count("SELECT count(*) FROM readings WHERE msg_id = 'own'") == 1
    assert "Denied PUBLISH" not in gw.log()
    assert gw.stop() == 0



def reading(msg_id: str, seconds: int = 0) -> bytes:
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return encode_readings(msg_id, at, [Measurement("spo2", 95, "%", at)])

