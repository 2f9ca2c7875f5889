"""`vward score FILE.csv`: NEWS2 for clinical auditors, CSV in, CSV out (see alerting.score_csv)."""

from __future__ import annotations

import argparse
import sys

from alerting.score_csv import main as score_csv
from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with resp_rate,spo2,spo2_scale,on_oxygen,"
                        "systolic_bp,pulse,consciousness,temperature columns")


def run(args: argparse.Namespace, settings: Settings) -> int:
    del settings  # scoring a file needs no configuration
    return score_csv(args.file, sys.stdout, sys.stderr)
