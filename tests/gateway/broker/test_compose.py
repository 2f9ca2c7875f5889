"""deploy/compose agrees with the broker `vward broker setup` makes for it: the setup command
in the compose file's header writes exactly the shipped deploy/mosquitto/mosquitto.conf, and
every service's mounts, ports, env files and URLs match that config and those env files.

No container engine runs here (the docker client has no compose plugin, and there is no
daemon), so this parses the YAML instead of `docker compose config`.
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.broker_admin import read_env_file
from ward.cli import main

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "deploy/compose/compose.yaml"
SHIPPED_CONF = REPO / "deploy/mosquitto/mosquitto.conf"
# The eclipse-mosquitto image starts `mosquitto -c /mosquitto/config/mosquitto.conf`.
IMAGE_CONF = PurePosixPath("/mosquitto/config/mosquitto.conf")


def _setup_argv() -> list[str]:
    lines = [ln for ln in COMPOSE.read_text().splitlines()
             if ln.startswith("#   vward broker setup ")]
    assert len(lines) == 1, "the compose header names one setup command"
    return shlex.split(lines[0].removeprefix("#   vward "))


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _listeners(conf: str) -> dict[str, tuple[int, str]]:
    """{"tls": (port, bind), "plain": (port, bind)}: a listener followed by a certfile is TLS."""
    found: dict[str, tuple[int, str]] = {}
    lines = [ln.split() for ln in conf.splitlines() if ln.strip() and not ln.startswith("#")]
    for i, words in enumerate(lines):
        if words[0] == "listener":
            tls = i + 1 < len(lines) and lines[i + 1][0] == "certfile"
            found["tls" if tls else "plain"] = (int(words[1]), words[2] if len(words) > 2 else "")
    return found


def _directive(conf: str, name: str) -> str:
    values = [ln.split(None, 1)[1] for ln in conf.splitlines() if ln.startswith(f"{name} ")]
    assert len(values) == 1, name
    return values[0].strip()


def _mounts(service: dict[str, Any]) -> dict[PurePosixPath, str]:
    """Container path → source (a host path relative to deploy/compose, or a volume name)."""
    out: dict[PurePosixPath, str] = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out[PurePosixPath(target)] = source
    return out


def _source_of(service: dict[str, Any], path: PurePosixPath) -> tuple[str, PurePosixPath]:
    """(mount source, path inside it) of a container path."""
    for target, source in sorted(_mounts(service).items(), key=lambda m: -len(m[0].parts)):
        if path == target or target in path.parents:
            return source, path.relative_to(target)
    raise AssertionError(f"{path} is on no mount of {service}")


def _host(source: str) -> Path:
    return (COMPOSE.parent / source).resolve()


def test_the_compose_files_match_the_broker_setup_they_document(tmp_path: Path) -> None:
    argv = _setup_argv()
    out = _host(_option(argv, "--out").removeprefix("deploy/compose/"))
    assert out == REPO / "deploy/compose/broker"  # what the mounts below refer to
    assert "/deploy/compose/broker/" in (REPO / ".gitignore").read_text()  # secrets stay out
    written = tmp_path / "broker"
    argv[argv.index("--out") + 1] = str(written)
    assert main(argv) == 0
    conf = (written / "mosquitto.conf").read_text()
    assert conf == SHIPPED_CONF.read_text(), "regenerate deploy/mosquitto/mosquitto.conf"

    compose = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, dict[str, Any]] = compose["services"]
    broker = services["broker"]
    listeners = _listeners(conf)
    tls_port, plain_port = listeners["tls"][0], listeners["plain"][0]
    # The plain listener is bound inside the container only and never published.
    assert listeners["plain"][1] == "0.0.0.0"  # noqa: S104 - inside the container, unpublished
    published = [str(p).rsplit(":", 1) for p in broker["ports"]]
    assert [int(container) for _, container in published] == [tls_port]
    assert all(str(plain_port) not in str(p) for s in services.values() for p in s.get("ports", []))
    # The config that runs is the shipped one, where the image looks for it.
    assert _host(_mounts(broker)[IMAGE_CONF]) == SHIPPED_CONF
    # TLS files from the setup's certs/, persistence and the plugin's file in the data volume.
    for name in ("certfile", "keyfile", "cafile"):
        source, inside = _source_of(broker, PurePosixPath(_directive(conf, name)))
        assert _host(source) / inside == out / "certs" / inside.name
    data_volume, _ = _source_of(broker, PurePosixPath(_directive(conf, "persistence_location")))
    assert data_volume in compose["volumes"]
    dynsec = PurePosixPath(_directive(conf, "plugin_opt_config_file"))
    assert _source_of(broker, dynsec)[0] == data_volume
    init = services["broker-init"]
    assert _source_of(init, dynsec)[0] == data_volume
    copied_from = next(t for t, s in _mounts(init).items()
                       if _host(s) == out / "dynamic-security.json")
    script = " ".join(init["command"])
    assert f"cp {copied_from} {dynsec}" in script
    assert f"test -e {dynsec} ||" in script  # never over the broker's own copy
    assert broker["depends_on"]["broker-init"]["condition"] == "service_completed_successfully"

    # The services' broker URL is the plain listener, by the broker's service name.
    gateway_env = read_env_file(written / "gateway.env")
    admin_env = read_env_file(written / "admin.env")
    for env in (gateway_env, admin_env):
        url = urlsplit(env["VW_MQTT_URL"])
        assert (url.scheme, url.hostname, url.port) == ("mqtt", "broker", plain_port)
    mqtt_services = {"gateway-1", "gateway-2", "alerting"}
    for name, service in services.items():
        environment = service.get("environment", {})
        if name in mqtt_services:
            assert _host(service["env_file"]) == out / "gateway.env", name
            assert "broker" in service["depends_on"], name
        assert not {"VW_MQTT_URL", "VW_MQTT_USERNAME", "VW_MQTT_PASSWORD"} & set(environment), \
            f"{name} overrides the broker setup's credentials"
    client_ids = [services[g]["environment"]["VW_MQTT_CLIENT_ID"] for g in ("gateway-1", "gateway-2")]
    assert len(set(client_ids)) == 2
    assert all(c.startswith("vw-") for c in client_ids)  # service ids no device can take
    # The demo simulator provisions as the admin, from the setup's admin.env.
    simulator = services["simulator"]
    admin_path = PurePosixPath(_option(simulator["command"], "--broker-admin"))
    assert _host(_mounts(simulator)[admin_path]) == out / "admin.env"

    # The database URL names the db service and its credentials; every reference resolves.
    db_env = services["db"]["environment"]
    for name, service in services.items():
        url_text = service.get("environment", {}).get("VW_DATABASE_URL")
        if url_text is not None:
            db = urlsplit(url_text)
            assert (db.hostname, db.username, db.password, db.path) == (
                "db", db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"],
                "/" + db_env["POSTGRES_DB"]), name
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on unknown {needed}"
        for source in _mounts(service).values():
            assert source.startswith(".") or source in compose["volumes"], (name, source)


def test_the_docs_give_the_compose_setup_command() -> None:
    argv = _setup_argv()
    docs = (REPO / "docs/mqtt.md").read_text()
    for flag in ("--plain-bind", "--service-host", "--dynsec-file", "--config-dir"):
        assert f"{flag} {_option(argv, flag)}" in docs, flag
