"""A throwaway three-node RabbitMQ cluster on loopback, for the cluster test and benchmark.

Why RabbitMQ: it is the one clustered MQTT broker these machines can install (Debian's
`rabbitmq-server` 3.10, with its `rabbitmq_mqtt` plugin), and its MQTT QoS 1 path is built on
publisher confirms: the PUBACK to a device is sent when every queue the message was routed to
has confirmed it (3.10's `rabbit_mqtt_processor` keeps `unacked_pubs` and answers on
`basic.ack`), and a quorum queue (`mqtt.durable_queue_type = quorum`) confirms only once a
majority of its replicas has written it. So a PUBACK means "on two of three nodes' disks".

Every node is ours: its own `RABBITMQ_NODENAME`, ports, `RABBITMQ_MNESIA_BASE` and log folder
under one temp folder, its own Erlang cookie (`HOME`) and its own epmd on its own port. The
machine's RabbitMQ (127.0.0.1:5672, epmd 4369) is never touched. Nodes form the cluster by
classic peer discovery (each lists the three node names). `kill(i)` is SIGKILL of node i's
whole process group; `restart(i)` brings it back with its data.

`Balancer` is a loopback TCP load balancer (what a Kubernetes Service or HAProxy is in
production): each new connection goes to the next node that accepts it, so the gateway has
one `VW_MQTT_URL` and lands on a live node after a kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ward.embedded import EmbeddedError, free_port, wait_for_port

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBIT_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
# A node boots in ~3 s here; three at once on two busy cores take longer.
NODE_START_TIMEOUT_S = 90.0

# What the promise rests on, the same in deploy/rabbitmq/rabbitmq.conf and the Kubernetes
# ConfigMap (a test keeps them in step): durable (clean_session false) MQTT subscriptions in
# quorum queues — replicated by Raft, a publish is confirmed, and so PUBACKed, once a
# majority of replicas has it — and room for the gateway's ack-after-commit batches of up to
# 500 (RabbitMQ's default prefetch is 10; MQTT 3.1.1 has no Receive Maximum).
PROMISE_SETTINGS = (
    "mqtt.durable_queue_type = quorum",
    "mqtt.prefetch = 2000",
    "cluster_partition_handling = pause_minority",
)

NODE_CONFIG = """\
listeners.tcp.default = 127.0.0.1:{amqp_port}
mqtt.listeners.tcp.default = 127.0.0.1:{mqtt_port}
{promise}
mqtt.allow_anonymous = true
loopback_users = none
cluster_formation.peer_discovery_backend = classic_config
{peers}
cluster_formation.randomized_startup_delay_range.min = 0
cluster_formation.randomized_startup_delay_range.max = 1
log.console = false
log.file.level = warning
"""


def available() -> bool:
    """True when this machine has RabbitMQ's server (Debian's package) and epmd."""
    return Path(RABBIT_SERVER).exists() and Path(EPMD).exists()


@dataclass
class Node:
    index: int
    name: str
    amqp_port: int
    mqtt_port: int
    dist_port: int
    folder: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with (self.folder / "out.log").open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [RABBIT_SERVER], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the node and every process it started (no clean shutdown, no flush)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def ctl(self, *args: str) -> str:
        """Run `rabbitmqctl -n <this node> *args` (our cookie and epmd); its output."""
        done = subprocess.run([RABBIT_CTL, "-n", self.name, *args], env=self.env,  # noqa: S603
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            msg = f"rabbitmqctl {' '.join(args[:2])} failed: {done.stderr[-500:]}"
            raise EmbeddedError(msg)
        return done.stdout

    def log(self) -> str:
        logs = [self.folder / "out.log", *sorted((self.folder / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs if p.exists())


@dataclass
class RabbitCluster:
    folder: Path
    epmd_port: int
    nodes: list[Node] = field(default_factory=list)
    epmd: subprocess.Popen[bytes] | None = None

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        node.start()
        wait_for_port(node.mqtt_port, NODE_START_TIMEOUT_S)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(size: int = 3) -> RabbitCluster:
    """Start `size` RabbitMQ nodes on loopback that form one cluster; wait for MQTT on all."""
    if not available():
        msg = "RabbitMQ is not installed (apt-get install rabbitmq-server)"
        raise EmbeddedError(msg)
    folder = Path(tempfile.mkdtemp(prefix="vw-rabbit-"))
    home = folder / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(os.urandom(16).hex().upper())
    cookie.chmod(0o400)
    cluster = RabbitCluster(folder=folder, epmd_port=free_port())
    # Our own epmd, in the foreground so that we own (and end) it.
    cluster.epmd = subprocess.Popen(  # noqa: S603
        [EPMD, "-port", str(cluster.epmd_port), "-address", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    suffix = os.urandom(3).hex()
    names = [f"vw{suffix}n{i + 1}@localhost" for i in range(size)]
    peers = "\n".join(f"cluster_formation.classic_config.nodes.{i + 1} = {name}"
                      for i, name in enumerate(names))
    for i, name in enumerate(names):
        node_dir = folder / f"n{i + 1}"
        node_dir.mkdir()
        amqp, mqtt, dist = free_port(), free_port(), free_port()
        (node_dir / "rabbitmq.conf").write_text(
            NODE_CONFIG.format(amqp_port=amqp, mqtt_port=mqtt, peers=peers,
                               promise="\n".join(PROMISE_SETTINGS)))
        (node_dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (node_dir / "rabbitmq-env.conf").write_text("")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(cluster.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_NODENAME": name,
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CONFIG_FILE": str(node_dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node_dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(node_dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node_dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node_dir / "log"),
            "RABBITMQ_PID_FILE": str(node_dir / "pid"),
        }
        cluster.nodes.append(Node(i, name, amqp, mqtt, dist, node_dir, env))
    try:
        for node in cluster.nodes:
            node.start()
        for node in cluster.nodes:
            wait_for_port(node.mqtt_port, NODE_START_TIMEOUT_S)
    except EmbeddedError as exc:
        detail = "\n".join(n.log() for n in cluster.nodes)[-4000:]
        cluster.stop()
        msg = f"the RabbitMQ cluster did not start: {exc}\n{detail}"
        raise EmbeddedError(msg) from exc
    return cluster


class Balancer:
    """Loopback TCP load balancer over `targets` (ports), round-robin, skipping dead ones.

    Runs an asyncio loop in its own thread. `connections` lists the target of each accepted
    connection in order, so a test can kill the node its first gateway landed on.
    """

    def __init__(self, targets: list[int]) -> None:
        self.targets = targets
        self.port = free_port()
        self.connections: list[int] = []  # the target of each accepted connection, in order
        self._writers: set[asyncio.StreamWriter] = set()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="balancer")
        self._thread.start()
        self._server: asyncio.Server | None = None
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.targets)):
            target = self.targets[self._next % len(self.targets)]
            self._next += 1
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                continue
            self.connections.append(target)
            self._writers |= {writer, up_writer}
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            self._writers -= {writer, up_writer}
            return
        writer.close()

    def close(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
            await asyncio.sleep(0.1)  # let the aborted transports finish closing
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
