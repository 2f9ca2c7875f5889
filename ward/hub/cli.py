"""`vward hub`: serve the ward API and the live dashboard with uvicorn.

SIGINT/SIGTERM stop it cleanly (exit 0): uvicorn finishes in-flight requests, closes the
SSE streams after a short grace period, and the lifespan closes the pool and the listener.
"""

from __future__ import annotations

import argparse
import gc
from types import FrameType

from ward.settings import Settings

# Open SSE streams never finish on their own: give requests 3 s, then close the streams.
GRACEFUL_SHUTDOWN_S = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default VW_HUB_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default VW_HUB_PORT)")


def freeze_startup_heap() -> int:
    """Put everything alive once the app is built (modules, routes, models, templates: it
    lives as long as the process) out of the cyclic collector's reach; how many objects.

    A full collection stops every thread, the event loop included, while it walks every
    object the collector tracks. At 2,000 readings/s (`benchmarks/bench_latency.py`, issue
    14) the hub ran 7–8 of them per 5 s, 150–230 ms each, nearly all of it walking start-up
    objects: SSE events waited behind them (commit → event p99 ~130 ms, loop stalls to
    230 ms) and so did the row fetches. Frozen, a full collection walks only what the hub
    made since (the ward cache's rows, requests): ≤ ~50 ms. Garbage made later is
    collected as before; only cycles among the frozen objects would never be."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


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
    frozen = freeze_startup_heap()
    config = uvicorn.Config(
        app, host=host, port=port, log_level=settings.log_level.lower(),
        # Access logs carry query strings only (no bodies, no cookies): safe to keep.
        access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=False, server_header=False,
    )
    print(f"vward hub: http://{host}:{port}/  (API: /api/openapi.json; {frozen:,} start-up "
          "objects frozen)", flush=True)
    Server(config).run()
    return 0
