"""Device credentials: a fresh secret per device, its hash in the database, its line in
Mosquitto's password file.

The secret is shown once (returned to the caller) and never stored in clear: the database
keeps an Argon2 hash (`devices.credential_hash`), the broker's password file keeps
Mosquitto's own PBKDF2-SHA512 form (`$7$`, what `mosquitto_passwd` writes). We write that line
ourselves rather than calling `mosquitto_passwd -b`, which would put the secret on a command
line where any local user can read it in the process list; a test proves a real Mosquitto
accepts our lines.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from argon2 import PasswordHasher

from ward.domain.devices import validate_device_id

Conn = psycopg.Connection[Any]

# Mosquitto's `$7$` format (mosquitto_passwd, sha512-pbkdf2): 101 iterations, 12-byte salt,
# 64-byte derived key, both base64. The iteration count is Mosquitto's default; its broker
# reads the count from each line, so raising it here would also work.
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
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


def upsert_password_line(path: Path, username: str, line: str) -> None:
    """Replace (or add) `username`'s line atomically; the file stays readable by owner only."""
    lines = []
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and ln.split(":", 1)[0] != username]
    lines.append(line)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def provision_device(conn: Conn, device_id: str, password_file: Path | None = None,
                     *, now: dt.datetime | None = None) -> str:
    """Issue a new secret for `device_id`; return it (it is not stored in clear anywhere).

    Stores an Argon2 hash in `devices.credential_hash` and commits; writes the Mosquitto
    password-file line when `password_file` is given (send the broker SIGHUP to reload it).
    Reprovisioning replaces the old secret.
    """
    validate_device_id(device_id)
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
    return secret
