"""What a PUBACK means when the broker dies: single-node Mosquitto vs a RabbitMQ cluster.

Both tests SIGKILL a broker mid-stream, with real gateway processes and a real PostgreSQL,
and compare every acknowledged message's readings (`ward.ackcheck.ledger`) with what the
database kept. Each prints its figures (run with `-s` to see them).

- Mosquitto (the project's config, `autosave_interval 30`): a PUBACK means "in Mosquitto's
  memory". Acknowledged messages queued for a gateway that is not reading (restarting, slow,
  or the database down) and not yet autosaved die with the process.
- RabbitMQ 3.10, three nodes, MQTT subscriptions in quorum queues: a PUBACK means "confirmed
  by a majority of the queue's replicas". Devices publish to different nodes, two gateway
  processes reach the cluster through a load balancer, and the node that the first gateway
  (and so its queue's leader) sits on is killed: nothing acknowledged may be lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ward import ackcheck, rabbitcluster
from ward.embedded import start_broker


def _register(ward: Any, prefix: str, n: int) -> list[str]:
    devices = list(ackcheck.iter_devices(prefix, n))
    for device in devices:
        ward.add(device)
    return devices


@pytest.mark.slow
def test_sigkill_of_single_mosquitto_loses_acknowledged_readings(
    ward: Any, start_gateway: Any, unique: str,
) -> None:
    broker = start_broker()
    if broker.kind != "mosquitto":
        broker.stop()
        pytest.skip("mosquitto is not installed")
    try:
        prefix = f"mk{unique}-"
        devices = _register(ward, prefix, 20)
        gw = start_gateway(ward.url, broker.url, client_id=f"gw-mk-{unique}",
                           VW_MQTT_SHARE_GROUP="", VW_MQTT_PROTOCOL="3.1.1")
        # The gateway stops (a deploy, a crash loop, the database down): devices keep
        # publishing, Mosquitto acknowledges and queues for the gateway's persistent session.
        assert gw.stop() == 0
        stream = ackcheck.TrackedStream([broker.url], devices, count=2_000, per_message=5,
                                        rate=2_000).start()
        stream.join(60)
        assert broker.process is not None
        broker.process.kill()  # SIGKILL: well inside the 30 s autosave interval
        broker.process.wait()
        broker.start()  # same persistence folder and port
        start_gateway(ward.url, broker.url, client_id=f"gw-mk-{unique}",
                      VW_MQTT_SHARE_GROUP="", VW_MQTT_PROTOCOL="3.1.1")
        ackcheck.wait_stored(ward.url, prefix, 10_000, 20)
        result = ackcheck.ledger(ward.url, stream, prefix)
        print(f"\nmosquitto SIGKILL (gateway away, backlog queued): acknowledged "
              f"{result.acked_readings} readings, stored {result.distinct}, "
              f"lost {result.lost} ({100 * result.lost / max(1, result.acked_readings):.0f} %)")
        assert result.acked_readings == 10_000
        assert result.duplicates == 0
        # The promise a single Mosquitto cannot keep: this is why the cluster option exists.
        assert result.lost > 0, result
    finally:
        broker.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rabbitmq_cluster_node_sigkill_keeps_every_acknowledged_reading(
    ward: Any, start_gateway: Any, unique: str,
) -> None:
    if not rabbitcluster.available():
        pytest.skip("rabbitmq-server is not installed (scripts/test installs it)")
    cluster = rabbitcluster.start_cluster(3)
    balancer = rabbitcluster.Balancer([n.mqtt_port for n in cluster.nodes])
    try:
        prefix = f"rq{unique}-"
        devices = _register(ward, prefix, 30)
        # RabbitMQ 3.10 speaks MQTT 3.1.1 and has no $share: each gateway has its own
        # persistent session (a quorum queue) and stores everything; the database's natural
        # key makes the second copy a no-op. Redundancy, not load sharing.
        gateways = [start_gateway(ward.url, balancer.url, client_id=f"gw-rq{i}-{unique}",
                                  VW_MQTT_SHARE_GROUP="", VW_MQTT_PROTOCOL="3.1.1")
                    for i in range(2)]
        urls = [n.url for n in cluster.nodes]
        stream = ackcheck.TrackedStream(urls, devices, count=6_000, per_message=5,
                                        rate=600).start()
        deadline = time.monotonic() + 30
        while ackcheck.stored_count(ward.url, prefix) < 3_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = next(i for i, n in enumerate(cluster.nodes)
                      if n.mqtt_port == balancer.connections[0])
        killed_at = time.monotonic()
        cluster.kill(victim)  # the first gateway's node: its connection and queue leader
        stream.join(120)
        stored = ackcheck.wait_stored(ward.url, prefix, 30_000, 60)
        result = ackcheck.ledger(ward.url, stream, prefix)
        gap = ackcheck.gap_s(stream.acked, killed_at)
        print(f"\nrabbitmq 3-node SIGKILL of node {victim + 1}: acknowledged "
              f"{result.acked_readings} readings, stored {result.distinct} ({stored} rows), "
              f"lost {result.lost}, duplicates {result.duplicates}, longest PUBACK gap "
              f"{gap:.1f} s, device failovers {sum(g.failovers for g in stream.groups)}")
        assert result.acked_messages == 6_000, "every message was acknowledged in the end"
        assert result.lost == 0, result
        assert result.duplicates == 0
        assert all(gw.process.poll() is None for gw in gateways)
        # The first gateway lost its node and resumed its session on another one.
        log = gateways[0].log()
        assert "mqtt disconnected" in log, log
        assert "session_present=True" in log, log
    finally:
        balancer.close()
        cluster.stop()


def test_deployed_rabbitmq_config_has_the_tested_settings() -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    for path in (deploy / "rabbitmq" / "rabbitmq.conf",
                 deploy / "kubernetes" / "rabbitmq-cluster.yaml"):
        lines = {line.strip() for line in path.read_text().splitlines()}
        missing = [s for s in rabbitcluster.PROMISE_SETTINGS if s not in lines]
        assert not missing, f"{path} lacks {missing}"


class _Device:
    """A paho 3.1.1 client that records SUBACKs and every disconnect (paho reconnects by
    itself, so `is_connected()` alone would miss the broker dropping us)."""

    def __init__(self, url: str, username: str, password: str) -> None:
        import threading

        import paho.mqtt.client as paho

        host, port = url.removeprefix("mqtt://").split(":")
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{username}-t",
                                  protocol=paho.MQTTv311)
        self.client.username_pw_set(username, password)
        self.ready = threading.Event()
        self.subacks: list[Any] = []
        self.dropped = threading.Event()
        self.client.on_connect = lambda *_a: self.ready.set()
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self.subacks.extend(reasons)
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.slow
def test_rabbitmq_topic_permissions_isolate_devices(unique: str) -> None:
    """deploy/rabbitmq/README.md's users and topic permissions: a device publishes only its
    own readings and reads only its own results (as deploy/mosquitto/acl does). RabbitMQ
    answers a forbidden publish or subscribe by closing the connection."""
    if not rabbitcluster.available():
        pytest.skip("rabbitmq-server is not installed (scripts/test installs it)")
    from gateway.contract import readings_topic, results_topic

    cluster = rabbitcluster.start_cluster(1)
    try:
        node = cluster.nodes[0]
        for device in ("pox-a", "pox-b"):
            node.ctl("add_user", device, f"secret-{device}")
            node.ctl("set_permissions", "-p", "/", device, f"^mqtt-subscription-{device}.*",
                     f"^(amq\\.topic|mqtt-subscription-{device}.*)$",
                     f"^(amq\\.topic|mqtt-subscription-{device}.*)$")
            node.ctl("set_topic_permissions", "-p", "/", device, "amq.topic",
                     "^vw\\.v1\\.devices\\.{username}\\.(readings|senml|status)$",
                     "^vw\\.v1\\.devices\\.{username}\\.(results|status)$")
        own = _Device(node.url, "pox-a", "secret-pox-a")
        own.client.publish(readings_topic("pox-a"), b"{}", qos=1).wait_for_publish(10)
        own.client.subscribe(results_topic("pox-a"), qos=1)
        deadline = time.monotonic() + 10
        while not own.subacks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.is_failure for r in own.subacks] == [False]
        assert not own.dropped.is_set()
        own.close()

        reader = _Device(node.url, "pox-a", "secret-pox-a")
        reader.client.subscribe(results_topic("pox-b"), qos=1)
        assert reader.dropped.wait(10), "reading another device's results was not refused"
        assert not any(not r.is_failure for r in reader.subacks)
        reader.close()

        forger = _Device(node.url, "pox-a", "secret-pox-a")
        info = forger.client.publish(readings_topic("pox-b"), b"{}", qos=1)
        assert forger.dropped.wait(10), "publishing as another device was not refused"
        time.sleep(0.5)
        assert not info.is_published()  # no PUBACK: the message was not accepted
        forger.close()
    finally:
        cluster.stop()
