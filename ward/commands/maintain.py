"""`vward maintain`: periodic database housekeeping (run daily, e.g. by a systemd timer).

Applies the readings retention on plain PostgreSQL by dropping whole monthly partitions that
ended more than `--keep-days` ago (TimescaleDB's retention policy does this by itself), and on
TimescaleDB refreshes the hourly summaries over the raw data still kept, so readings backfilled
older than the aggregate policy's window are summarised too (`ward.db.summaries`).
Latest values, scores and alerts are kept: they are small and clinically relevant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import psycopg

from ward.db import summaries
from ward.settings import Settings

# 400 days: a year of audits plus a margin, the same as the TimescaleDB retention policy.
DEFAULT_KEEP_DAYS = 400


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-days", type=int, default=DEFAULT_KEEP_DAYS,
                        help=f"keep readings this many days (default {DEFAULT_KEEP_DAYS})")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.keep_days < 1:
        print("vward maintain: --keep-days must be at least 1", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(settings.database_conninfo()) as conn:
            dropped = [str(r[0]) for r in conn.execute(
                "SELECT vw_apply_reading_retention(%s)", (dt.timedelta(days=args.keep_days),))]
        with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
            refreshed = summaries.refresh(conn, dt.datetime.now(dt.UTC))
    except psycopg.Error as exc:
        print(f"vward maintain: {exc}", file=sys.stderr)
        return 1
    if dropped:
        print(f"dropped {len(dropped)} readings partition(s): {', '.join(dropped)}")
    else:
        print(f"nothing to drop (readings kept {args.keep_days} days)")
    if refreshed is not None:
        print(f"hourly summaries refreshed {refreshed.start:%Y-%m-%d %H:%M} → "
              f"{refreshed.end:%Y-%m-%d %H:%M} UTC")
    return 0
