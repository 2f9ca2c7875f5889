"""A complete production broker setup for one host, from one command (`vward broker setup`).

What it writes into the output folder:

- `mosquitto.conf` — TLS listener for devices, a plain listener on loopback for the gateway,
  no anonymous clients, the dynamic-security plugin, persistence and the queue limits
  (`ward/broker/mosquitto.prod.conf` rendered with this host's paths);
- `dynamic-security.json` — the plugin's file with the broker admin (`vw-admin`) and the
  gateway (`vw-gateway`), each with a fresh secret, and no device yet;
- `gateway.env`, `admin.env` — `VW_MQTT_URL/USERNAME/PASSWORD` for `vward gateway` and
  `vward alerting` (systemd `EnvironmentFile=`) and for `vward devices provision
  --broker-admin`; readable by their owner only;
- `certs/` — where the TLS certificate, key and CA are expected (the operator's PKI puts them
  there; the paths can be changed).

Secrets are written once and never overwritten: a second run into the same folder refuses.
`render_config` and `env_file` are pure; `write_setup` is the thin I/O around them.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway import dynsec

# Where the plugin lives: Debian/Ubuntu packages, then the eclipse-mosquitto image.
PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)
# The broker drops to this user when started as root (Debian's package and the image).
BROKER_USER = "mosquitto"
# 32 random bytes as URL-safe text: 256 bits, as for devices (gateway.provision).
SECRET_BYTES = 32


class SetupError(RuntimeError):
    """The setup cannot be written (folder already holds one, bad argument…)."""


def default_plugin() -> str:
    for path in PLUGIN_CANDIDATES:
        if Path(path).exists():
            return path
    return PLUGIN_CANDIDATES[0]


@dataclass(frozen=True, slots=True)
class BrokerPlan:
    """Every path and port of one host's broker, as the broker will see them."""

    host: str
    config_dir: Path
    data_dir: Path
    plugin: str
    tls_port: int = 8883
    tls_bind: str = ""  # "" = every interface (devices come from the network)
    plain_port: int = 1883
    plain_bind: str = "127.0.0.1"
    certfile: Path | None = None
    keyfile: Path | None = None
    cafile: Path | None = None
    # Default CONFIG_DIR/dynamic-security.json; elsewhere when the config folder is read-only
    # to the broker (compose mounts it so): the plugin rewrites this file on every change.
    dynsec_path: Path | None = None
    # The name the gateway, `vward alerting` and the admin reach the plain listener by, when
    # not on the broker's own host (compose: the broker's service name on the private network).
    service_host: str = ""

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            msg = f"invalid host {self.host!r}"
            raise SetupError(msg)
        if any(c.isspace() or c in "/:@" for c in self.service_host):
            msg = f"invalid service host {self.service_host!r}"
            raise SetupError(msg)
        if not self.plain_bind:
            msg = "the plain listener needs an address (127.0.0.1 unless on a private network)"
            raise SetupError(msg)

    def tls_path(self, name: str, given: Path | None) -> Path:
        return given if given is not None else self.config_dir / "certs" / name

    @property
    def dynsec_file(self) -> Path:
        return self.dynsec_path or self.config_dir / "dynamic-security.json"

    @property
    def local_url(self) -> str:
        """How the gateway and the admin reach the plain listener (gateway.env, admin.env):
        `service_host`, else the broker's own host."""
        host = self.service_host or (
            "127.0.0.1" if self.plain_bind in ("127.0.0.1", "0.0.0.0") else self.plain_bind)  # noqa: S104
        return f"mqtt://{host}:{self.plain_port}"

    @property
    def device_url(self) -> str:
        return f"mqtts://{self.host}:{self.tls_port}"


def render_config(plan: BrokerPlan) -> str:
    template = (resources.files("ward") / "broker" / "mosquitto.prod.conf").read_text()
    return template.format(
        host=plan.host, tls_port=plan.tls_port,
        tls_bind=f" {plan.tls_bind}" if plan.tls_bind else "",
        certfile=plan.tls_path("server.crt", plan.certfile),
        keyfile=plan.tls_path("server.key", plan.keyfile),
        cafile=plan.tls_path("ca.crt", plan.cafile),
        plain_port=plan.plain_port, plain_bind=plan.plain_bind, plugin=plan.plugin,
        dynsec_file=plan.dynsec_file, data_dir=plan.data_dir)


def env_file(url: str, username: str, secret: str, ca_file: Path | None = None) -> str:
    lines = [f"VW_MQTT_URL={url}", f"VW_MQTT_USERNAME={username}", f"VW_MQTT_PASSWORD={secret}"]
    if ca_file is not None:
        lines.append(f"VW_MQTT_CA_FILE={ca_file}")
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start (a secret is never world-readable, not even
    for a moment); refuse to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _broker_uid() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(BROKER_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def write_setup(plan: BrokerPlan, out: Path) -> dict[str, Path]:
    """Write the setup into `out`; return what was written. Run as root where the broker
    runs, the plugin's file and the data folder are handed to user `mosquitto`."""
    out.mkdir(parents=True, exist_ok=True)
    written = {name: out / name for name in
               ("mosquitto.conf", "dynamic-security.json", "gateway.env", "admin.env")}
    clash = [str(p) for p in written.values() if p.exists()]
    if clash:
        msg = f"{', '.join(clash)} already exist: a setup is never overwritten (its secrets " \
              "are in use); rotate credentials with `vward broker rotate`"
        raise SetupError(msg)
    admin_secret = secrets.token_urlsafe(SECRET_BYTES)
    gateway_secret = secrets.token_urlsafe(SECRET_BYTES)
    (out / "certs").mkdir(exist_ok=True)
    _write_new(written["mosquitto.conf"], render_config(plan), 0o644)
    _write_new(written["dynamic-security.json"],
               json.dumps(dynsec.initial_config(admin_secret, gateway_secret), indent=1), 0o600)
    _write_new(written["gateway.env"],
               env_file(plan.local_url, dynsec.GATEWAY_USERNAME, gateway_secret), 0o600)
    _write_new(written["admin.env"],
               env_file(plan.local_url, dynsec.ADMIN_USERNAME, admin_secret), 0o600)
    in_place = plan.config_dir == out.resolve()
    if in_place:
        plan.data_dir.mkdir(parents=True, exist_ok=True)
    owner = _broker_uid()
    if owner is not None:
        # The plugin rewrites its file in place on every change; persistence needs its folder.
        os.chown(written["dynamic-security.json"], *owner)
        if in_place:
            shutil.chown(plan.data_dir, user=owner[0], group=owner[1])
    return written
