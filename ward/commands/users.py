"""`vward users create USERNAME --role …`: add a hub user with an argon2-hashed password.

The password is read from stdin with `--password-stdin` (for scripts), else prompted twice
without echo; it is never taken from the command line, where `ps` and shell history see it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import psycopg

from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", required=True,
                        choices=["hub_nurse", "clinician", "admin", "safety_officer"])
    create.add_argument("--display-name", default=None)
    create.add_argument("--phone", default=None, help="for escalation calls / SMS")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")


def _password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("vward users: the passwords differ", file=sys.stderr)
        return None
    return first


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ward.hub.auth import Role, create_user, normalise_username
    from ward.hub.people import MIN_PASSWORD, USERNAME

    password = _password(args.password_stdin)
    if password is None:
        return 1
    if len(password) < MIN_PASSWORD:
        print(f"vward users: the password needs at least {MIN_PASSWORD} characters",
              file=sys.stderr)
        return 1
    username = normalise_username(args.username)  # the People screens' and API's rule
    if not USERNAME.fullmatch(username):
        print("vward users: a username is 2–64 characters of a-z, 0-9, '_', '.', '-'",
              file=sys.stderr)
        return 1
    try:
        with psycopg.connect(settings.database_conninfo()) as conn:
            user = create_user(conn, username, password, role=Role(args.role),
                               display_name=args.display_name, phone=args.phone)
    except psycopg.errors.UniqueViolation:
        print(f"vward users: the username {username!r} is taken", file=sys.stderr)
        return 1
    except psycopg.errors.CheckViolation:
        print("vward users: a username is 2–64 characters of a-z, 0-9, '_', '.', '-'",
              file=sys.stderr)
        return 1
    print(f"created {user.username} ({user.role.value})")
    return 0
