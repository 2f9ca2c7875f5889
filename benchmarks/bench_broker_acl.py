"""What the dynamic-security plugin costs the broker: QoS 1 PUBACK throughput of one device
publishing into the production setup (`vward broker setup`: plugin, per-device role) against
the development broker (anonymous, no ACL), each with a gateway-like subscriber attached.

Usage: python benchmarks/bench_broker_acl.py [--messages 50000] [--rounds 3]

Both brokers are this machine's Mosquitto, started on free loopback ports and stopped
afterwards; the publisher is the lean pipelined client of the load runs
(`simulators.mqttwire`) over the plain listener, so TLS is not part of the figure. Prints
messages/s per broker (best of the rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway import dynsec
from gateway.broker_admin import BrokerAdmin, read_env_file
from gateway.broker_setup import BrokerPlan, default_plugin, write_setup
from gateway.contract import Measurement, encode_readings, readings_topic
from simulators.mqttwire import MqttWireError, WirePublisher
from ward.embedded import free_port, start_broker, wait_for_port

DEVICE = "bench-pox-1"


@contextlib.contextmanager
def production_broker() -> Iterator[tuple[str, dict[str, str], str]]:
    """(plain URL, gateway env, device secret) of a broker made by `write_setup`."""
    folder = Path(tempfile.mkdtemp(prefix="vw-bench-broker-"))
    folder.chmod(0o755)
    plain, tls = free_port(), free_port()
    plan = BrokerPlan(host="127.0.0.1", config_dir=folder, data_dir=folder / "data",
                      plugin=default_plugin(), tls_port=tls, tls_bind="127.0.0.1",
                      plain_port=plain)
    write_setup(plan, folder)
    certs = folder / "certs"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt"),
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    shutil.copy(certs / "server.crt", certs / "ca.crt")
    if os.geteuid() == 0:  # the broker drops to user mosquitto, who must read the key
        shutil.chown(certs / "server.key", group="mosquitto")
        (certs / "server.key").chmod(0o640)
    process = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(plain)
        secret = secrets.token_urlsafe(32)
        with BrokerAdmin.from_env_file(folder / "admin.env") as admin:
            admin.call(dynsec.create_device(DEVICE, secret))
        yield plan.local_url, read_env_file(folder / "gateway.env"), secret
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def rate(url: str, messages: int, *, user: str | None, password: str | None,
         sub_user: str | None, sub_password: str | None) -> float:
    """PUBACKed messages/s for `messages` QoS 1 publishes, a QoS 0 subscriber attached."""
    host, port = url.removeprefix("mqtt://").split(":")
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vw-gateway-bench-{port}",
                      protocol=MQTTProtocolVersion.MQTTv5)
    if sub_user:
        sub.username_pw_set(sub_user, sub_password)
    sub.connect(host, int(port))
    sub.loop_start()
    sub.subscribe("vw/v1/devices/+/readings", qos=0)
    time.sleep(0.5)  # the SUBACK; this is a benchmark, not a test
    now = dt.datetime.now(dt.UTC)
    payload = encode_readings("m", now, [Measurement("spo2", 95, "%", now)])
    pub = WirePublisher(url, DEVICE, username=user, password=password)
    topic = readings_topic(DEVICE)
    start = time.perf_counter()
    for _ in range(messages):
        pub.publish(topic, payload)
    pub.flush()
    elapsed = time.perf_counter() - start
    pub.close()
    sub.loop_stop()
    sub.disconnect()
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dev = start_broker()
    try:
        with production_broker() as (url, gateway, secret):
            best_dev = best_prod = 0.0
            for _ in range(args.rounds):
                try:
                    best_dev = max(best_dev, rate(dev.url, args.messages, user=None,
                                                  password=None, sub_user=None,
                                                  sub_password=None))
                    best_prod = max(best_prod, rate(
                        url, args.messages, user=DEVICE, password=secret,
                        sub_user=gateway["VW_MQTT_USERNAME"],
                        sub_password=gateway["VW_MQTT_PASSWORD"]))
                except MqttWireError as exc:
                    # Seen now and then on the shared 2-core machine; the round is not counted.
                    print(f"round dropped: {exc}")
    finally:
        dev.stop()
    print(f"messages per round: {args.messages}, rounds: {args.rounds} (best shown)")
    print(f"development broker (no ACL):          {best_dev:9,.0f} msg/s")
    print(f"production setup (dynamic security):  {best_prod:9,.0f} msg/s")
    print(f"ratio production / development:       {best_prod / best_dev:9.2f}")


if __name__ == "__main__":
    main()
