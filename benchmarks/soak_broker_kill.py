"""Is a SIGKILLed gateway's MQTT link ever short of a message, with no database at all?

The gateway's own link (`gateway.mqtt.MqttLink`: read-ahead socket, its PUBLISH parser, acks
in one write, generations) on the project's development Mosquitto, a shared subscription in a
persistent session, acknowledged only after "commit" (here an append to a file), as the
ingest loop does. A child process is that consumer; the parent publishes `--messages` QoS 1
messages at full speed and SIGKILLs the child at random intervals up to `--kill-ms`,
restarting it with the same client id, then lets the last one drain. Every payload must be in
the file. Not a test (minutes of load):
`flock /tmp/vw-bench.lock python benchmarks/soak_broker_kill.py --rounds 20`.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ward.embedded import Broker, start_broker

CHILD = r"""
import os, queue, sys
from gateway.mqtt import MqttLink, broker_address
port, client_id, out = sys.argv[1], sys.argv[2], sys.argv[3]
# Its own share group: a killed consumer's session keeps its share of a group (docs/mqtt.md).
link = MqttLink(broker_address(f"mqtt://127.0.0.1:{port}"), client_id=client_id,
                share_group=client_id, receive_maximum=2000, session_expiry_s=86400)
link.start()
link.subscribed.wait()
open(out + ".subscribed", "w").close()
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
while True:
    try:
        batch = link.take_many(100, 0.2)
    except queue.Empty:
        continue
    os.write(fd, b"".join(m.payload + b"\n" for m in batch))  # the "commit"
    link.ack_all(batch)
"""
REPO = Path(__file__).resolve().parents[1]


class Consumer:
    """The child consumer, restartable with the same client id (the same session)."""

    def __init__(self, port: int, client_id: str, out: Path) -> None:
        self.args = [sys.executable, "-c", CHILD, str(port), client_id, str(out)]
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.args, env=self.env)

    def kill(self, *, restart: bool = True) -> None:
        self.process.kill()
        self.process.wait()
        if restart:
            self.process = self._start()


class Publisher:
    """`count` QoS 1 messages at full speed on a background thread; counts PUBACKs."""

    def __init__(self, port: int, tag: str, count: int) -> None:
        self.tag, self.count, self.acked = tag, count, 0
        self.done = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        threading.Thread(target=self._run, daemon=True).start()

    def _on_publish(self, *_args: object) -> None:
        self.acked += 1

    def _run(self) -> None:
        for i in range(self.count):
            self.client.publish(f"vw/v1/devices/d{i % 40}/senml", f"{self.tag}-{i}".encode(),
                                qos=1)
        self.done.set()

    def finished(self) -> bool:
        return self.done.is_set() and self.acked >= self.count

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def one_round(broker: Broker, messages: int, kill_ms: int) -> list[str]:
    """Publish while killing the consumer; the payloads never stored (empty: none lost)."""
    tag = uuid.uuid4().hex[:8]
    fd, name = tempfile.mkstemp(prefix=f"soak-broker-{tag}-")
    os.close(fd)
    out = Path(name)
    consumer = Consumer(broker.port, f"soak-{tag}", out)
    subscribed = Path(f"{out}.subscribed")
    while not subscribed.exists():  # a first session is in no subscription before its SUBACK
        time.sleep(0.05)
    subscribed.unlink()
    publisher = Publisher(broker.port, tag, messages)
    kills = 0
    while not publisher.finished():
        time.sleep(random.uniform(0.05, kill_ms / 1000))
        consumer.kill()
        kills += 1
    want = {f"{tag}-{i}" for i in range(messages)}
    got: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not want <= got:
        time.sleep(0.5)
        got = set(out.read_text().split())
    consumer.kill(restart=False)
    publisher.close()
    out.unlink()
    missing = sorted(want - got, key=lambda s: int(s.rsplit("-", 1)[1]))
    print(f"kills {kills}, acked {publisher.acked}, stored {len(got & want)}, "
          f"missing {len(missing)} {missing[:20]}", flush=True)
    return missing


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--kill-ms", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(143))  # a kill stops the broker too
    broker = start_broker()
    lost: list[bool] = []
    try:
        for _ in range(args.rounds):
            lost.append(bool(one_round(broker, args.messages, args.kill_ms)))
    finally:
        broker.stop()
    print(f"rounds {len(lost)}, with a message lost {sum(lost)}")
    return 1 if any(lost) else 0


if __name__ == "__main__":
    raise SystemExit(main())
