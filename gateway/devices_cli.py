"""`vward devices`: register, assign, provision and deactivate home devices.

    vward devices register pox-0001 --kind pulse_oximeter [--model "Nonin 3230"]
    vward devices assign pox-0001 --patient 943 476 5919 [--from 2026-11-24T09:00:00Z]
    vward devices provision pox-0001 [--password-file /etc/mosquitto/vw.passwd]
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
from ward.domain.devices import Assignment, Device, DeviceKind
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
    prov.add_argument("--password-file", type=Path,
                      help="Mosquitto password file to add the device's line to")
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.provision import ProvisionError, provision_device

    try:
        with psycopg.connect(settings.database_conninfo()) as conn:
            if args.action == "register":
                registry.add_device(conn, Device(args.device_id, DeviceKind(args.kind),
                                                 args.model))
                print(f"registered {args.device_id} ({args.kind})")
            elif args.action == "assign":
                patient = patient_id_for(conn, " ".join(args.patient))
                start = _instant(args.start)
                registry.assign_device(conn, Assignment(args.device_id, patient, start))
                print(f"assigned {args.device_id} to patient {patient} from {start.isoformat()}")
            elif args.action == "provision":
                secret = provision_device(conn, args.device_id, args.password_file)
                where = f" and {args.password_file}" if args.password_file else ""
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
    except (DomainError, ProvisionError) as exc:
        print(f"vward devices: {exc}", file=sys.stderr)
        return 1
    return 0
