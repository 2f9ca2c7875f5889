"""`vward simulate SCENARIO`: drive the broker with a simulated ward (and register it).

SCENARIO is a shipped name (`demo`, `quiet-ward`, `deteriorations`, `noisy-devices`,
`load-10k`) or a YAML/TOML file. Modes:

* live (default): simulated time starts the scenario's `backfill` before now, runs at `speed`
  until it catches up with the wall clock, then at 1×; runs for `duration` of simulated time,
  or until SIGINT/SIGTERM when the scenario has none (the demo); exits 0 when stopped.
* `--start ISO`: a deterministic run from a fixed instant, published as fast as the broker
  takes it (test and replay fixtures).
* `--dry-run`: print the deterministic message stream as JSON lines, no broker.
* `--load RATE --processes N`: publish the scenario at RATE messages/s (0 = flat out) from N
  processes for `--duration` of wall-clock time (default 30 s), and print the figure.

`--register` / `--register-only` create, idempotently, the scenario's patients (NHS test range
999…), referrals and admissions, devices, assignments from before the run's first simulated
instant, and care plans (Scale 2 for COPD patients on a 88–92 % target; for pump patients the
IV prescription of the running reservoir — drug and dose, 240 mL, 24 h at 10 mL/h, its start —
through the hub API's store function, and, in a registered live run, each new reservoir's as
the simulated nurse connects it: `ward.commands.sim_infusions`). It lives here, not in `simulators`, because it needs the database.
`--broker-admin admin.env` (and/or `--password-file FILE`, for a broker without dynamic
security) registers the ward and issues every device's credentials the way `vward devices
provision` does (`gateway.provision.provision_device`: a client and role per device on the
running broker, an Argon2 hash in the database), then publishes as each device over its own
connection (client id = device id), as the broker's ACL requires.
`--ground-truth FILE` writes what really happened as JSON lines, with the true NEWS2 crossings
computed by `alerting.news2` (which `simulators` may not import).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

from simulators.clock import LiveClock
from simulators.devices import Outbound
from simulators.engine import Engine
from simulators.groundtruth import GroundTruth, instant
from simulators.physiology import TrueState
from simulators.publisher import (
    Progress,
    Publisher,
    PublishError,
    commands_to,
    publish_stream,
    run_load,
)
from simulators.scenario import DeviceType, Scenario, ScenarioError, load, parse_duration
from simulators.ward import SimPatient, build_ward
from ward.commands.sim_infusions import prescribing
from ward.db import registry
from ward.domain.devices import Assignment, Device
from ward.domain.patients import Admission, Patient
from ward.settings import Settings

SCALE2_SET_BY = "simulator scenario"
SCALE2_REASON = "COPD with hypercapnic respiratory failure: prescribed target 88–92 %"
# Assignments and admissions begin this long before the run's first simulated instant, so a
# reading measured at the very start is attributed to its patient.
ASSIGN_MARGIN = dt.timedelta(hours=1)
DEFAULT_LOAD_SECONDS = 30.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a shipped scenario name or a YAML/TOML file")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument("--speed", type=float, default=None,
                        help="simulated seconds per real second while catching up")
    parser.add_argument("--duration", default=None,
                        help="simulated span (e.g. 2h); with --load: wall-clock time (default 30s)")
    parser.add_argument("--start", default=None,
                        help="deterministic run from this instant (ISO 8601), published unpaced")
    register = parser.add_mutually_exclusive_group()
    register.add_argument("--register", action="store_true",
                          help="register patients and devices, then simulate")
    register.add_argument("--register-only", action="store_true",
                          help="register patients and devices, and stop")
    parser.add_argument("--broker-admin", metavar="ADMIN_ENV", type=Path, default=None,
                        help="admin.env of `vward broker setup`: provision every device of the "
                             "scenario on the running broker (dynamic security) and publish "
                             "as each device")
    parser.add_argument("--ca-file", default=None,
                        help="CA certificate when the admin URL is mqtts://")
    parser.add_argument("--password-file", "--provision", dest="password_file", type=Path,
                        metavar="PASSWORD_FILE", default=None,
                        help="provision device credentials into this Mosquitto password file "
                             "(a broker without dynamic security; send it SIGHUP) and publish "
                             "as each device")
    parser.add_argument("--ground-truth", metavar="FILE", default=None,
                        help="write ground truth as JSON lines")
    parser.add_argument("--dry-run", action="store_true",
                        help="print messages to stdout as JSON lines; no broker")
    parser.add_argument("--load", type=float, default=None, metavar="RATE",
                        help="load mode: messages/s over all processes (0 = flat out)")
    parser.add_argument("--processes", type=int, default=2, help="load mode processes")
    parser.add_argument("--progress", action="store_true",
                        help="print progress on stderr once a second (default on a terminal "
                             "for finite runs)")


@dataclass(frozen=True, slots=True)
class RegisterReport:
    patients_created: int
    admissions_created: int
    devices_created: int
    assignments_created: int
    care_plans_created: int
    patient_ids: dict[str, int]
    prescriptions_written: int = 0  # IV prescriptions of pumps' running reservoirs


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...]) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def register_ward(conn: psycopg.Connection[Any], scenario: Scenario, patients: list[SimPatient],
                  first_instant: dt.datetime) -> RegisterReport:
    """Create what is missing; running it again changes nothing (but the IV prescription of
    a pump whose reservoir differs, for a run from another first instant). The caller
    commits."""
    from ward.commands.sim_infusions import reservoir_starts

    since = first_instant - ASSIGN_MARGIN
    reservoirs = reservoir_starts(scenario, patients, first_instant)
    created = dict.fromkeys(("patients", "admissions", "devices", "assignments", "plans",
                             "prescriptions"), 0)
    ids: dict[str, int] = {}
    for sim in patients:
        pid = _one(conn, "SELECT id FROM patients WHERE nhs_number = %s", (sim.nhs_number,))
        if pid is None:
            pid = registry.add_patient(conn, Patient(
                sim.nhs_number, sim.given_name, sim.family_name, sim.date_of_birth)).id
            created["patients"] += 1
        assert pid is not None  # noqa: S101 - add_patient returns the new id
        ids[sim.nhs_number] = int(pid)
        open_admission = _one(conn, "SELECT id FROM admissions WHERE patient_id = %s "
                                    "AND status IN ('referred', 'admitted')", (pid,))
        if open_admission is None:
            referral = Admission(int(pid), sim.pathway, sim.source,
                                 referred_at=since - dt.timedelta(hours=2))
            admission = registry.add_admission(conn, referral.admit(since - ASSIGN_MARGIN))
            created["admissions"] += 1
            _risk_facts(conn, scenario, sim, patient_id=int(pid), admission_id=admission.id,
                        at=since)
        for device in sim.devices:
            if _one(conn, "SELECT pk FROM devices WHERE id = %s", (device.device_id,)) is None:
                registry.add_device(conn, Device(device.device_id, device.kind, device.model))
                created["devices"] += 1
            covered = _one(conn, "SELECT count(*) FROM device_assignments a JOIN devices d "
                                 "ON d.pk = a.device_pk WHERE d.id = %s AND a.patient_id = %s "
                                 "AND a.during @> %s::timestamptz", (device.device_id, pid, since))
            if not covered:
                _assign(conn, device.device_id, int(pid), since)
                created["assignments"] += 1
        plans, prescribed = _care_plan(conn, sim, int(pid), since, reservoirs)
        created["plans"] += plans
        created["prescriptions"] += prescribed
    return RegisterReport(created["patients"], created["admissions"], created["devices"],
                          created["assignments"], created["plans"], ids,
                          created["prescriptions"])


def _risk_facts(conn: psycopg.Connection[Any], scenario: Scenario, sim: SimPatient, *,
                patient_id: int, admission_id: int | None, at: dt.datetime) -> None:
    """The simulated patient's readmission facts (`simulators.risk`), entered once as at
    referral, with their LACE and HOSPITAL scores (issue 16)."""
    from simulators import risk as simrisk
    from ward.hub import risk

    if _one(conn, "SELECT 1 FROM risk_factors WHERE patient_id = %s", (patient_id,)) is None:
        risk.save_factors(conn, patient_id, simrisk.draw(sim, scenario.seed).factors, now=at,
                          by="simulator")
        risk.record_scores(conn, patient_id, admission_id, "referral", now=at)


def _assign(conn: psycopg.Connection[Any], device_id: str, patient_id: int,
            since: dt.datetime) -> None:
    """Assign from `since`, or move an open assignment to this patient back to `since`."""
    moved = conn.execute(
        "UPDATE device_assignments a SET during = tstzrange(%s, NULL, '[)') FROM devices d "
        "WHERE d.pk = a.device_pk AND d.id = %s AND a.patient_id = %s AND upper_inf(a.during) "
        "AND lower(a.during) > %s AND NOT EXISTS (SELECT 1 FROM device_assignments o "
        "WHERE o.device_pk = a.device_pk AND o.id <> a.id AND o.during && tstzrange(%s, NULL))",
        (since, device_id, patient_id, since, since)).rowcount
    if not moved:
        registry.assign_device(conn, Assignment(device_id, patient_id, since))


def _care_plan(conn: psycopg.Connection[Any], sim: SimPatient, patient_id: int,
               since: dt.datetime, reservoirs: dict[str, dt.datetime]) -> tuple[int, int]:
    """Scale 2 for a COPD patient on a 88–92 % target (once: a plan that exists is left as a
    clinician may have changed it) and the IV prescription of a pump's running reservoir,
    both through the store functions the hub's care-plan API uses. (plans created,
    prescriptions written)."""
    from alerting import care_plan_store
    from ward.commands import sim_infusions

    pumps = [d.device_id for d in sim.devices if d.type is DeviceType.INFUSION_PUMP]
    scale2 = sim.profile.spo2_scale == 2
    if not (scale2 or pumps):
        return 0, 0
    new = _one(conn, "SELECT 1 FROM care_plans WHERE patient_id = %s", (patient_id,)) is None
    if new and scale2:
        care_plan_store.set_spo2_scale(conn, patient_id, scale=2, target_low=88.0,
                                       target_high=92.0, by=SCALE2_SET_BY, reason=SCALE2_REASON,
                                       now=since)
    prescribed = sum(sim_infusions.prescribe(conn, patient_id, reservoirs[d], since)
                     for d in pumps[:1])  # one IV line per patient
    return int(new), prescribed


def news2_total(state: TrueState, spo2_scale: int) -> int:
    """The true NEWS2 of a simulated state (the ground truth's scorer)."""
    from alerting.news2 import Consciousness, Observations, score

    return score(Observations(
        resp_rate=state.resp_rate, spo2=state.spo2, on_oxygen=state.on_oxygen,
        systolic_bp=state.systolic_bp, pulse=state.pulse,
        consciousness=Consciousness(state.consciousness), temperature=state.temperature,
        spo2_scale=spo2_scale)).total


def dry_run_line(message: Outbound) -> str:
    body: dict[str, object] = {"at": instant(message.at), "topic": message.topic,
                               "qos": message.qos, "retain": message.retain}
    try:
        body["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        body["payload_base64"] = base64.b64encode(message.payload).decode()
    return json.dumps(body, separators=(",", ":"))


def _overrides(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    update: dict[str, object] = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.speed is not None:
        update["speed"] = args.speed
    if args.duration is not None and args.load is None:
        update["duration"] = parse_duration(args.duration)
    return Scenario.model_validate({**scenario.model_dump(), **update}) if update else scenario


@contextlib.contextmanager
def _truth_file(path: str | None, patient_ids: dict[str, int]) -> Iterator[GroundTruth | None]:
    if path is None:
        yield None
        return
    with Path(path).open("w", encoding="utf-8") as stream:
        yield GroundTruth.to_file(stream, scorer=news2_total, patient_ids=patient_ids)


def _provision(conn: psycopg.Connection[Any], patients: list[SimPatient], args: argparse.Namespace
               ) -> dict[str, str]:
    """Every device's credentials, issued as `vward devices provision` issues one
    (`gateway.provision.provision_device`): on the running broker (`--broker-admin`) and/or in
    a password file (`--password-file`). {device id: secret}, for publishing as each device."""
    from gateway.broker_admin import BrokerAdmin
    from gateway.provision import provision_device

    ids = [device.device_id for sim in patients for device in sim.devices]
    if args.broker_admin is None:
        return {i: provision_device(conn, i, args.password_file) for i in ids}
    with BrokerAdmin.from_env_file(args.broker_admin, ca_file=args.ca_file) as admin:
        return {i: provision_device(conn, i, args.password_file, broker=admin) for i in ids}


def _broker_url(settings: Settings, args: argparse.Namespace) -> str:
    """VW_MQTT_URL; else, provisioning on a broker, the URL of its admin.env (the broker
    the devices were just provisioned on); else the local default."""
    if settings.mqtt_url:
        return settings.mqtt_url
    if getattr(args, "broker_admin", None) is not None:
        from gateway.broker_admin import read_env_file

        url = read_env_file(args.broker_admin).get("VW_MQTT_URL")
        if url:
            return url
    return "mqtt://127.0.0.1:1883"


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _register(args: argparse.Namespace, settings: Settings, scenario: Scenario,
              first: dt.datetime, *, provisioning: bool
              ) -> tuple[dict[str, int], dict[str, str] | None] | None:
    """Register the ward (and provision its devices); (patient ids, device credentials), or
    None when provisioning failed (said on stderr; nothing is committed)."""
    from gateway.broker_admin import BrokerAdminError
    from gateway.provision import ProvisionError

    credentials: dict[str, str] | None = None
    patients = build_ward(scenario, scenario.seed, first)
    with psycopg.connect(settings.database_conninfo()) as conn:
        report = register_ward(conn, scenario, patients, first)
        if provisioning:
            try:
                credentials = _provision(conn, patients, args)
            except (ProvisionError, BrokerAdminError, OSError) as exc:
                conn.rollback()  # the connection's `with` would commit the registration
                print(f"vward simulate: provisioning failed, nothing registered: {exc}",
                      file=sys.stderr)
                return None
        conn.commit()
    print(f"registered scenario {scenario.name!r}: {report.patients_created} patient(s), "
          f"{report.admissions_created} admission(s), {report.devices_created} device(s), "
          f"{report.assignments_created} assignment(s), {report.care_plans_created} care "
          f"plan(s) created, {report.prescriptions_written} IV prescription(s) written "
          f"({len(patients)} patients in the scenario)", file=sys.stderr)
    if credentials is not None:
        print(f"provisioned {len(credentials)} device(s)"
              + (" on the broker" if args.broker_admin is not None else "")
              + (f" in {args.password_file}" if args.password_file is not None else ""),
              file=sys.stderr)
    return report.patient_ids, credentials


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        scenario = _overrides(load(args.scenario), args)
        start = (None if args.start is None
                 else dt.datetime.fromisoformat(args.start.replace("Z", "+00:00")))
    except (ScenarioError, ValueError) as exc:
        print(f"vward simulate: {exc}", file=sys.stderr)
        return 2
    if start is not None and start.tzinfo is None:
        print("vward simulate: --start needs a timezone (e.g. 2026-01-05T06:00:00Z)",
              file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.UTC)
    clock = None
    if start is None and not args.dry_run:
        clock = LiveClock.starting(now, scenario.backfill, scenario.speed)
        start = clock.sim_start
    first = start or scenario.start
    patient_ids: dict[str, int] = {}
    credentials: dict[str, str] | None = None
    provisioning = args.broker_admin is not None or args.password_file is not None
    if args.register or args.register_only or provisioning:
        registered = _register(args, settings, scenario, first, provisioning=provisioning)
        if registered is None:
            return 2
        patient_ids, credentials = registered
        if args.register_only:
            return 0
    if args.load is not None:
        return _run_load(scenario, args, settings)
    url = _broker_url(settings, args)
    with _truth_file(args.ground_truth, patient_ids) as truth:
        engine = Engine(scenario, start=first, truth=truth)
        stop = _stop_on_signals()
        if args.dry_run:
            return _dry_run(engine, stop, sys.stdout)
        show = args.progress or (sys.stderr.isatty() and scenario.duration is not None)
        try:
            publisher = Publisher(url, username=settings.mqtt_username,
                                  password=None if settings.mqtt_password is None
                                  else settings.mqtt_password.get_secret_value(),
                                  credentials=credentials, listen=True,
                                  client_id=f"vw-sim-{scenario.name}-{scenario.seed}",
                                  protocol=settings.mqtt_protocol)
        except PublishError as exc:
            print(f"vward simulate: {exc}", file=sys.stderr)
            return 1
        if clock is not None and clock.caught_up_at is not None:
            print(f"simulating {scenario.name!r} from {first.isoformat()} at {scenario.speed:g}×, "
                  f"catching up with the wall clock at {clock.caught_up_at.isoformat()}",
                  file=sys.stderr)
        try:
            messages = engine.messages()
            if patient_ids:  # registered: each new reservoir is prescribed as it is connected
                messages = prescribing(messages, engine, settings.database_conninfo(),
                                       patient_ids, lambda line: print(line, file=sys.stderr))
            sent = publish_stream(messages, publisher.publish, clock=clock, stop=stop,
                       progress=Progress(sys.stderr) if show else None,
                       acked=lambda: publisher.acked, inbox=commands_to(engine, publisher))
        finally:
            publisher.close()
            if truth is not None and stop.is_set():
                truth.summary(dt.datetime.now(dt.UTC), messages=engine.sent, stopped=True)
    print(f"simulate: {sent:,} message(s) published, {publisher.acked:,} acknowledged",
          file=sys.stderr)
    return 0


def _dry_run(engine: Engine, stop: threading.Event, out: IO[str]) -> int:
    try:
        for message in engine.messages():
            if stop.is_set():
                break
            out.write(dry_run_line(message))
            out.write("\n")
        out.flush()
    except BrokenPipeError:  # `vward simulate … --dry-run | head`: the reader has enough
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _run_load(scenario: Scenario, args: argparse.Namespace, settings: Settings) -> int:
    seconds = (parse_duration(args.duration).total_seconds() if args.duration is not None
               else DEFAULT_LOAD_SECONDS)
    url = settings.mqtt_url or "mqtt://127.0.0.1:1883"
    stop = _stop_on_signals()
    try:
        result = run_load(scenario, url, rate=args.load, processes=args.processes,
                          seconds=seconds, stop=stop)
    except (PublishError, OSError) as exc:
        print(f"vward simulate: {exc}", file=sys.stderr)
        return 1
    print(f"load: {result.acked:,} messages acknowledged (QoS 1) in {result.seconds:.1f} s by "
          f"{args.processes} process(es) = {result.rate:,.0f} messages/s")
    return 0
