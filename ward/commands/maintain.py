"""`vward maintain`: periodic database housekeeping (run daily, e.g. by a systemd timer).

Applies the readings retention on plain PostgreSQL by dropping whole monthly partitions that
ended more than `--keep-days` ago (TimescaleDB's retention policy does this by itself), and on
TimescaleDB refreshes the hourly summaries over the raw data still kept, so readings backfilled
older than the aggregate policy's window are summarised too (`ward.db.summaries`).
Latest values, scores and alerts are kept: they are small and clinically relevant.

Also the gateway's own bookkeeping (issue 9): dead letters (`rejected_messages`), device
quarantine records and idle dead-letter accounts older than `--dead-letter-days`, and SenML
first-seen times older than the gateway's session expiry (nothing older can be redelivered).
And the hub's log-in sessions and bearer tokens that ended (expired or revoked) more than
`--session-days` ago (`ward.hub.auth.prune_sessions`; no audit row references one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import psycopg

from gateway import dead_letter_sink, relative_times
from ward.db import summaries
from ward.hub import auth
from ward.settings import Settings

# 400 days: a year of audits plus a margin, the same as the TimescaleDB retention policy.
DEFAULT_KEEP_DAYS = 400
# 30 days of dead letters: long enough to investigate and replay a device fault found at the
# monthly device review; they are bounded per device per hour anyway (gateway.dead_letters).
DEFAULT_DEAD_LETTER_DAYS = 30
# 30 days of ended sessions: a month to look into a suspicious log-in by its session rows
# (created, expiry, revocation) beside the audit log, which keeps the log-ins themselves.
DEFAULT_SESSION_DAYS = 30


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-days", type=int, default=DEFAULT_KEEP_DAYS,
                        help=f"keep readings this many days (default {DEFAULT_KEEP_DAYS})")
    parser.add_argument("--dead-letter-days", type=int, default=DEFAULT_DEAD_LETTER_DAYS,
                        help="keep dead letters and quarantine records this many days "
                        f"(default {DEFAULT_DEAD_LETTER_DAYS})")
    parser.add_argument("--session-days", type=int, default=DEFAULT_SESSION_DAYS,
                        help="keep hub sessions and bearer tokens this many days after they "
                        f"expired or were revoked (default {DEFAULT_SESSION_DAYS})")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.keep_days < 1 or args.dead_letter_days < 1 or args.session_days < 1:
        print("vward maintain: --keep-days, --dead-letter-days and --session-days must be at "
              "least 1", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(settings.database_conninfo()) as conn:
            dropped = [str(r[0]) for r in conn.execute(
                "SELECT vw_apply_reading_retention(%s)", (dt.timedelta(days=args.keep_days),))]
            conn.commit()
            letters, quarantines, accounts = dead_letter_sink.apply_retention(
                conn, dt.timedelta(days=args.dead_letter_days))
            with conn.transaction():
                first_seen = relative_times.expire(
                    conn, dt.timedelta(seconds=settings.gateway_session_expiry_s))
            with conn.transaction():
                sessions = auth.prune_sessions(
                    conn, dt.timedelta(days=args.session_days), now=dt.datetime.now(dt.UTC))
        with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
            refreshed = summaries.refresh(conn, dt.datetime.now(dt.UTC))
    except psycopg.Error as exc:
        print(f"vward maintain: {exc}", file=sys.stderr)
        return 1
    if dropped:
        print(f"dropped {len(dropped)} readings partition(s): {', '.join(dropped)}")
    else:
        print(f"nothing to drop (readings kept {args.keep_days} days)")
    print(f"deleted {letters} dead letter(s), {quarantines} quarantine record(s) and "
          f"{accounts} idle dead-letter account(s) older than {args.dead_letter_days} days, "
          f"{first_seen} SenML first-seen time(s) older than the session expiry")
    print(f"deleted {sessions} hub session(s) and token(s) ended more than "
          f"{args.session_days} days ago")
    if refreshed is not None:
        print(f"hourly summaries refreshed {refreshed.start:%Y-%m-%d %H:%M} → "
              f"{refreshed.end:%Y-%m-%d %H:%M} UTC")
    return 0
