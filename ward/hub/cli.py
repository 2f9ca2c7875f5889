"""`vward hub`: serve the ward API and the live dashboard with uvicorn.

SIGINT/SIGTERM stop it cleanly (exit 0): uvicorn finishes in-flight requests, closes the
SSE streams after a short grace period, and the lifespan closes the pool and the listener.
"""

from __future__ import annotations

import argparse

from ward.settings import Settings

# Open SSE streams never finish on their own: give requests 3 s, then close the streams.
GRACEFUL_SHUTDOWN_S = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default VW_HUB_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default VW_HUB_PORT)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ward.hub.app import create_app

    host = args.host or settings.hub_host
    port = args.port or settings.hub_port
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level=settings.log_level.lower(),
        # Access logs carry query strings only (no bodies, no cookies): safe to keep.
        access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=False, server_header=False,
    )
    print(f"vward hub: http://{host}:{port}/  (API: /api/openapi.json)", flush=True)
    uvicorn.Server(config).run()
    return 0
