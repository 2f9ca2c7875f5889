"""`vward devices`: register, assign, provision and deactivate home devices.

    vward devices register pox-0001 --kind pulse_oximeter [--model "Nonin 3230"]
    vward devices assign pox-0001 --patient 943 476 5919 [--from 2026-11-24T09:00:00Z]
    vward devices provision pox-0001 --broker-admin /etc/mosquitto/vw/admin.env [--ca-file …]
    vward devices provision pox-0001 --password-file /etc/mosquitto/vw.passwd  (older brokers)
    vward devices deactivate pox-0001
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import psycopg

from ward.db import registry
from ward.domain import nhs_number
from ward.domain.devices import Assignment, Device, DeviceKind, validate_home_device_id
from ward.domain.errors import DomainError
from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    reg = sub.add_parser("register", help="register a device")
    reg.add_argument("device_id")
    reg.add_argument("--kind", required=True, choices=[k.value for k in DeviceKind])
    reg.add_argument("--model", default="")
    assign = sub.add_parser("assign", help="assign a device to a patient from a moment on")
    assign.add_argument("device_id")
    assign.add_argument("--patient", required=True, nargs="+",
                        help="NHS number (spaces allowed) or internal patient id")
    assign.add_argument("--from", dest="start", help="ISO 8601 instant (default: now)")
    prov = sub.add_parser("provision", help="issue the device's broker credentials")
    prov.add_argument("device_id")
    prov.add_argument("--broker-admin", type=Path,
                      help="admin.env of `vward broker setup`: create the device's client on "
                           "the running broker (dynamic security)")
    prov.add_argument("--ca-file", help="CA certificate when the admin URL is mqtts://")
    prov.add_argument("--password-file", type=Path,
                      help="Mosquitto password file to add the device's line to (a broker "
                           "without dynamic security; send it SIGHUP afterwards)")
    deact = sub.add_parser("deactivate", help="refuse the device's readings from now on")
    deact.add_argument("device_id")


def _instant(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        msg = f"--from {text!r} needs a time zone (e.g. Z or +00:00)"
        raise DomainError(msg)
    return when.astimezone(dt.UTC)


def patient_id_for(conn: psycopg.Connection[Any], given: str) -> int:
    """An NHS number (validated) or an internal id → the patient's id."""
    digits = given.replace(" ", "").replace("-", "")
    if len(digits) == 10:
        number = nhs_number.normalise(given)
        row = conn.execute("SELECT id FROM patients WHERE nhs_number = %s",
                           (number,)).fetchone()
        if row is None:
            msg = f"no patient with NHS number {nhs_number.display(number)}"
            raise DomainError(msg)
        return int(row[0])
    if digits.isdigit():
        row = conn.execute("SELECT id FROM patients WHERE id = %s", (int(digits),)).fetchone()
        if row is not None:
            return int(row[0])
    msg = f"no patient {given!r} (give a 10-digit NHS number or an internal id)"
    raise DomainError(msg)


def _provision(conn: psycopg.Connection[Any], args: argparse.Namespace) -> str:
    from gateway.broker_admin import BrokerAdmin
    from gateway.provision import provision_device

    if args.broker_admin is None:
        return provision_device(conn, args.device_id, args.password_file)
    with BrokerAdmin.from_env_file(args.broker_admin, ca_file=args.ca_file) as admin:
        return provision_device(conn, args.device_id, args.password_file, broker=admin)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.broker_admin import BrokerAdminError
    from gateway.provision import ProvisionError

    try:
        with psycopg.connect(settings.database_conninfo()) as conn:
            if args.action == "register":
                registry.add_device(conn, Device(validate_home_device_id(args.device_id),
                                                 DeviceKind(args.kind), args.model))
                print(f"registered {args.device_id} ({args.kind})")
            elif args.action == "assign":
                patient = patient_id_for(conn, " ".join(args.patient))
                start = _instant(args.start)
                registry.assign_device(conn, Assignment(args.device_id, patient, start))
                print(f"assigned {args.device_id} to patient {patient} from {start.isoformat()}")
            elif args.action == "provision":
                secret = _provision(conn, args)
                places = ([str(args.password_file)] if args.password_file else []) + (
                    ["the broker"] if args.broker_admin else [])
                where = "".join(f" and {place}" for place in places)
                print(f"device {args.device_id}: credentials stored (hash) in the database{where}",
                      file=sys.stderr)
                print(f"username={args.device_id}", file=sys.stderr)
                # The secret goes alone to stdout so it can be piped into the device's setup.
                print(secret)
            else:
                registry.set_device_active(conn, args.device_id, active=False,
                                           at=dt.datetime.now(dt.UTC))
                print(f"deactivated {args.device_id}")
            conn.commit()
    except (DomainError, ProvisionError, BrokerAdminError, OSError) as exc:
        print(f"vward devices: {exc}", file=sys.stderr)
        return 1
    return 0
