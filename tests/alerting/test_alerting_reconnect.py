"""`vward alerting` survives the loss of its database connections (issue 9, item 15).

A real `vward alerting` process on the real PostgreSQL: its backends are terminated with
`pg_terminate_backend` (what a failover, a restart or an administrator does), and escalations
must go on in the same process — before, it logged "the connection is closed" forever while
staying alive, so systemd never restarted it and escalations silently stopped.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerting.policy import Policy
from alerting.runner import evaluate_after_commit

HIGH = {"spo2": 90, "pulse": 125, "resp_rate": 26, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


def _database_ports(pid: int, server_port: int) -> set[int]:
    """Local TCP ports of process `pid`'s connections to `server_port` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _raise_high_alert(db: psycopg.Connection[Any], pid: int, policy: Policy, readings: Any,
                      write_readings: Any) -> None:
    """A high NEWS2 alert raised 20 min ago for `pid`: its first escalation is due."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    write_readings(db, readings(pid, at, **HIGH))
    evaluate_after_commit(db, [pid], at, policy=policy)


def _tier(db_url: str, pid: int) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT max(escalation_tier) FROM alerts WHERE patient_id = %s "
                           "AND kind = 'news2'", (pid,)).fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def test_alerting_reconnects_after_its_backends_are_terminated(
    db: psycopg.Connection[Any], db_url: str, to_url: Any, start_service: Any, poll: Any,
    policy: Policy, add_patients: Any, readings: Any, write_readings: Any,
) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    if str(params.get("host", "")).startswith("/"):
        pytest.skip("needs a TCP database connection to find the process's backends")
    first, second = add_patients(db, 2, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    _raise_high_alert(db, first, policy, readings, write_readings)
    service = start_service(["alerting", "--interval", "0.5"],
                            {"VW_DATABASE_URL": to_url(db_url), "VW_LOG_LEVEL": "INFO"},
                            ready="vward alerting: policy", name="alerting")
    poll(lambda: _tier(db_url, first) >= 1, 30, "the first alert to escalate")
    ports = _database_ports(service.process.pid, int(params.get("port", 5432)))
    assert len(ports) >= 2  # the work connection, the NOTIFY one and the leader's lock
    killed = db.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity WHERE client_port = ANY(%s)",
                        (sorted(ports),)).fetchone()
    db.commit()
    assert killed is not None
    assert killed[0] == len(ports)
    _raise_high_alert(db, second, policy, readings, write_readings)
    poll(lambda: _tier(db_url, second) >= 1, 30,
         "an escalation after the backends were terminated")
    assert service.process.poll() is None
    assert "database connection lost" in service.log()
    assert service.stop() == 0
