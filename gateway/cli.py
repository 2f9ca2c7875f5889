"""`vward gateway`: run the MQTT device gateway until SIGINT or SIGTERM (then exit 0); exit 1
when the broker refuses its subscription (a wrong role or user: see the error line).

Configuration comes from the `VW_…` settings; the flags only name this process (its MQTT
client id, which must be stable across restarts so the broker resumes its session) and the
CA certificate for an `mqtts://` broker.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from ward import gcpolicy
from ward.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-id", help="MQTT client id of this process (default: "
                        "VW_MQTT_CLIENT_ID); give each gateway process its own, stable one")
    parser.add_argument("--ca-file", help="CA certificate to verify an mqtts:// broker")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ingest import Gateway, SubscriptionRefused

    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("gateway stopping on %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        gateway = Gateway(settings, client_id=args.client_id, ca_file=args.ca_file)
        log.info("gateway %s", gcpolicy.describe(gcpolicy.tune_for_service()))
        gateway.run(stop)
    except SubscriptionRefused as exc:
        log.error("gateway exits with status 1: the broker refused its subscription (%s)", exc)
        return 1
    return 0
