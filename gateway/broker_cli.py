"""`vward broker`: make a host's production broker setup, rotate the service credentials.

    vward broker setup --host broker.ward.example --out /etc/mosquitto/vw \\
        [--data-dir /var/lib/mosquitto] [--certfile … --keyfile … --cafile …] \\
        [--plain-bind 127.0.0.1] [--service-host NAME]
    vward broker rotate vw-gateway --broker-admin /etc/mosquitto/vw/admin.env \\
        [--env-file /etc/mosquitto/vw/gateway.env]

Devices are added with `vward devices provision ID --broker-admin …/admin.env`.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    from gateway.broker_setup import default_plugin

    sub = parser.add_subparsers(dest="action", required=True)
    setup = sub.add_parser("setup", help="write a complete broker setup for one host")
    setup.add_argument("--host", required=True, help="the name devices connect to (TLS)")
    setup.add_argument("--out", required=True, type=Path, help="folder to write into")
    setup.add_argument("--config-dir", type=Path,
                       help="where the folder will be on the broker host (default: --out)")
    setup.add_argument("--data-dir", type=Path, default=Path("/var/lib/mosquitto"),
                       help="broker persistence folder (default /var/lib/mosquitto)")
    setup.add_argument("--plugin", default=default_plugin(),
                       help="path of mosquitto_dynamic_security.so on the broker host")
    setup.add_argument("--tls-port", type=int, default=8883)
    setup.add_argument("--tls-bind", default="", help="TLS listener address (default: all)")
    setup.add_argument("--plain-port", type=int, default=1883)
    setup.add_argument("--plain-bind", default="127.0.0.1",
                       help="plain listener address (default loopback only; 0.0.0.0 only on "
                            "a private network such as compose's, never published)")
    setup.add_argument("--service-host", default="",
                       help="name the gateway, alerting and admin reach the plain listener by, "
                            "written into gateway.env and admin.env (default: this host's "
                            "loopback; compose: the broker's service name)")
    setup.add_argument("--dynsec-file", type=Path,
                       help="where the broker finds (and rewrites) dynamic-security.json, "
                            "if not in CONFIG_DIR (e.g. a read-only config mount)")
    for name in ("certfile", "keyfile", "cafile"):
        setup.add_argument(f"--{name}", type=Path,
                           help=f"TLS {name} (default CONFIG_DIR/certs/…)")
    rotate = sub.add_parser("rotate", help="issue a new secret for a service identity")
    rotate.add_argument("username", choices=["vw-gateway", "vw-admin"])
    rotate.add_argument("--broker-admin", required=True, type=Path,
                        help="admin.env written by `vward broker setup`")
    rotate.add_argument("--env-file", type=Path,
                        help="env file to update with the new secret (else printed)")
    rotate.add_argument("--ca-file", help="CA certificate for an mqtts:// admin URL")


def _setup(args: argparse.Namespace) -> int:
    from gateway.broker_setup import BrokerPlan, write_setup

    out: Path = args.out
    plan = BrokerPlan(
        host=args.host, config_dir=(args.config_dir or out).resolve(),
        data_dir=args.data_dir, plugin=args.plugin, tls_port=args.tls_port,
        tls_bind=args.tls_bind, plain_port=args.plain_port, plain_bind=args.plain_bind,
        certfile=args.certfile, keyfile=args.keyfile, cafile=args.cafile,
        dynsec_path=args.dynsec_file, service_host=args.service_host)
    written = write_setup(plan, out)
    for path in written.values():
        print(f"wrote {path}")
    print(f"put the TLS certificate (naming {plan.host}), key and CA at "
          f"{plan.tls_path('server.crt', plan.certfile)}, "
          f"{plan.tls_path('server.key', plan.keyfile)}, "
          f"{plan.tls_path('ca.crt', plan.cafile)} (readable by user mosquitto)")
    print(f"start: mosquitto -c {plan.config_dir / 'mosquitto.conf'}")
    print(f"gateway and alerting: EnvironmentFile={plan.config_dir / 'gateway.env'}")
    print(f"devices connect to {plan.device_url}; provision each with "
          f"`vward devices provision ID --broker-admin {plan.config_dir / 'admin.env'}`")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from gateway import dynsec
    from gateway.broker_admin import BrokerAdmin, BrokerAdminError, read_env_file
    from gateway.broker_setup import SECRET_BYTES, env_file
    from gateway.provision import replace_file

    secret = secrets.token_urlsafe(SECRET_BYTES)
    with BrokerAdmin.from_env_file(args.broker_admin, ca_file=args.ca_file) as admin:
        own = admin.address.username == args.username
        try:
            admin.call([dynsec.set_password(args.username, secret)])
        except BrokerAdminError:
            # The plugin disconnects a client whose password changes: re-keying the admin
            # itself drops this very connection before the answer. Proven below instead.
            if not own:
                raise
    if own:
        with BrokerAdmin(admin.address.safe, args.username, secret, ca_file=admin.ca_file):
            pass  # the new secret lets the admin in: the change took
    if args.env_file is None:
        print(secret)
        return 0
    env = read_env_file(args.env_file)
    ca = env.get("VW_MQTT_CA_FILE")
    try:
        replace_file(args.env_file, env_file(env["VW_MQTT_URL"], args.username, secret,
                                             Path(ca) if ca else None))
    except OSError as exc:
        # The broker already has the new secret: never lose it (the admin would be locked out).
        print(secret)
        print(f"vward broker: {args.env_file} not updated ({exc}); the new secret is on stdout",
              file=sys.stderr)
        return 1
    print(f"{args.username}: new secret in {args.env_file}; restart the services that use it",
          file=sys.stderr)
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.broker_admin import BrokerAdminError
    from gateway.broker_setup import SetupError

    del settings  # the broker's own files, not the process settings, say where things are
    try:
        return _setup(args) if args.action == "setup" else _rotate(args)
    except (SetupError, BrokerAdminError, OSError, KeyError) as exc:
        print(f"vward broker: {exc}", file=sys.stderr)
        return 1
