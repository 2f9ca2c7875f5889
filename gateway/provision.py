"""Device credentials: a fresh secret per device, its hash in the database, and the broker's
copy — a client of the dynamic-security plugin (the shipped broker setup), or a line in a
Mosquitto password file (a broker configured the older way).

The secret is shown once (returned to the caller) and never stored in clear: the database
keeps an Argon2 hash (`devices.credential_hash`), the broker keeps PBKDF2-SHA512. On the
dynamic-security broker the device's client is created through the control API while the
broker runs, bound to client id = device id, with a role of its own topics
(`gateway.dynsec`): no file is rewritten, nothing is reloaded. For a password file we write
Mosquitto's `$7$` line ourselves rather than calling `mosquitto_passwd -b`, which would put the
secret on a command line where any local user can read it in the process list; the file is
replaced atomically and keeps its owner and mode, so a broker running as `mosquitto` can still
read it after the SIGHUP.

Service identities (`vw-…`) and the hub's staff-entry devices (`staff-…`) are never
provisioned (`ward.domain.devices.validate_home_device_id`).
"""

from __future__ import annotations

import base64
import datetime as dt
import grp
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from argon2 import PasswordHasher

from gateway import dynsec
from gateway.broker_admin import BrokerAdmin, BrokerAdminError
from ward.domain.devices import validate_home_device_id
from ward.domain.errors import DomainError

Conn = psycopg.Connection[Any]

# Mosquitto's `$7$` format (mosquitto_passwd, sha512-pbkdf2): 101 iterations, 12-byte salt,
# 64-byte derived key, both base64. The iteration count is Mosquitto's default; its broker
# reads the count from each line, so raising it here would also work.
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
# The group Debian's package and the eclipse-mosquitto image run the broker as.
BROKER_GROUP = "mosquitto"
# 32 random bytes as URL-safe text: 256 bits, beyond any guessing over the network.
SECRET_BYTES = 32


class ProvisionError(ValueError):
    """The device cannot be provisioned (unknown device, unreadable password file…)."""


def mosquitto_password_line(username: str, secret: str, salt: bytes | None = None,
                            iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """`username:$7$101$salt$hash` as mosquitto_passwd writes it."""
    if ":" in username or "\n" in username:
        msg = f"invalid broker username {username!r}"
        raise ProvisionError(msg)
    salt = salt if salt is not None else os.urandom(MOSQUITTO_SALT_BYTES)
    derived = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, 64)
    return (f"{username}:$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(derived).decode()}")


def mosquitto_password_ok(line: str, secret: str) -> bool:
    """Does `secret` match a `$7$` password-file line (ours or mosquitto_passwd's)?"""
    _, _, hashed = line.strip().partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    iterations, salt, want = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, len(want))
    return hmac.compare_digest(got, want)


def replace_file(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (a reader sees the old file or the new one,
    never half). An existing file keeps its owner, group and mode (the broker, running as
    `mosquitto`, must still read it after SIGHUP); a new one is readable by its owner only."""
    owner: tuple[int, int, int] | None = None
    if path.exists():
        st = path.stat()
        owner = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if owner is None:
            os.chmod(tmp, 0o600)
        else:
            uid, gid, mode = owner
            if (uid, gid) != (os.geteuid(), os.getegid()):
                # Only root (or the owner) can hand the file back; anyone else gets an error
                # here rather than a file the broker cannot read.
                os.chown(tmp, uid, gid)
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def upsert_password_line(path: Path, username: str, line: str) -> None:
    """Replace (or add) `username`'s line in a Mosquitto password file (`replace_file`).

    A new file made by root is `root:mosquitto` 0640 when that user exists: Mosquitto reads
    its password file as `mosquitto` (after dropping root), and a root-only file would lock
    every client out at the next SIGHUP or start."""
    lines = []
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and ln.split(":", 1)[0] != username]
    else:
        _create_for_broker(path)
    lines.append(line)
    replace_file(path, "\n".join(lines) + "\n")


def _create_for_broker(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return
    os.chown(path, 0, gid)
    os.chmod(path, 0o640)


def provision_on_broker(admin: BrokerAdmin, device_id: str, secret: str) -> None:
    """Create the device's dynamic-security client (and role), or re-key it. A client of that
    name that is not this device's own (another role, another client id) is left alone."""
    found = admin.call([dynsec.get_client(device_id)], tolerate=frozenset({"Client not found"}))
    client = found[0].get("data", {}).get("client")
    if client is None:
        create_role, create_client = dynsec.create_device(device_id, secret)
        made = admin.call([create_role], tolerate=frozenset({"Role already exists"}))
        if made[0].get("error"):
            # Left by an earlier run that failed between the two commands: reuse it only if
            # it grants exactly what a device's role grants.
            role = admin.call([dynsec.get_role(create_role["rolename"])])[0]
            if not dynsec.same_acls(role.get("data", {}).get("role", {}).get("acls", []),
                                    create_role["acls"]):
                msg = f"broker role {create_role['rolename']!r} exists with other ACLs"
                raise ProvisionError(msg)
        admin.call([create_client])
    elif dynsec.is_device_client(client, device_id):
        admin.call([dynsec.set_password(device_id, secret)])
    else:
        msg = f"broker client {device_id!r} exists and is not that device's: not changed"
        raise ProvisionError(msg)


def provision_device(conn: Conn, device_id: str, password_file: Path | None = None,
                     *, broker: BrokerAdmin | None = None,
                     now: dt.datetime | None = None) -> str:
    """Issue a new secret for `device_id`; return it (it is not stored in clear anywhere).

    Stores an Argon2 hash in `devices.credential_hash` and commits; creates or re-keys the
    device's client on the dynamic-security `broker` when given (effective at once), and
    writes the Mosquitto password-file line when `password_file` is given (send the broker
    SIGHUP to reload it). Reprovisioning replaces the old secret. Reserved ids are refused.
    """
    try:
        validate_home_device_id(device_id)
    except DomainError as exc:
        raise ProvisionError(str(exc)) from exc
    secret = secrets.token_urlsafe(SECRET_BYTES)
    issued = now or dt.datetime.now(dt.UTC)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET credential_hash = %s, credential_issued_at = %s WHERE id = %s",
            (PasswordHasher().hash(secret), issued, device_id))
        if cur.rowcount == 0:
            msg = f"no device {device_id!r}: register it first"
            raise ProvisionError(msg)
        if password_file is not None:
            upsert_password_line(password_file, device_id,
                                 mosquitto_password_line(device_id, secret))
        if broker is not None:
            try:
                provision_on_broker(broker, device_id, secret)
            except BrokerAdminError as exc:
                raise ProvisionError(str(exc)) from exc
    return secret
