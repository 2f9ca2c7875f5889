"""`vward hub`: serve the ward API and the live dashboard with uvicorn.

SIGINT/SIGTERM stop it cleanly (exit 0): uvicorn finishes in-flight requests, closes the
SSE streams after a short grace period, and the lifespan closes the pool and the listener.
"""

from __future__ import annotations

import argparse
from types import FrameType

from ward import gcpolicy
from ward.settings import Settings

# Open SSE streams never finish on their own: give requests 3 s, then close the streams.
GRACEFUL_SHUTDOWN_S = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default VW_HUB_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default VW_HUB_PORT)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ward.hub.app import create_app

    class Server(uvicorn.Server):
        """Ends open SSE streams as soon as a stop signal arrives, so shutdown is prompt."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            state = app.state
            loop = getattr(state, "loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(state.broadcaster.close)
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after shutting down; a stop asked for is a clean
            # exit here (exit 0, as `vward demo` expects of its children).
            self._captured_signals.clear()

    host = args.host or settings.hub_host
    port = args.port or settings.hub_port
    app = create_app(settings)
    # Start-up heap frozen, young collections rarer (ward.gcpolicy): full collections had
    # walked ~100,000 start-up objects 7-8 times per 5 s at 2,000 readings/s, 150-230 ms
    # each with the event loop stopped (SSE events and row fetches waited).
    frozen = gcpolicy.tune_for_service()
    config = uvicorn.Config(
        app, host=host, port=port, log_level=settings.log_level.lower(),
        # Access logs carry query strings only (no bodies, no cookies): safe to keep.
        access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=False, server_header=False,
    )
    print(f"vward hub: http://{host}:{port}/  (API: /api/openapi.json; "
          f"{gcpolicy.describe(frozen)})", flush=True)
    Server(config).run()
    return 0
