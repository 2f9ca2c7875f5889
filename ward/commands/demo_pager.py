"""The demo's SMS and pager provider: a local HTTP endpoint that prints every page it gets.

On a real ward `alerting.notify.HttpProviderNotifier` posts pages to the SMS/pager provider
named by `VW_SMS_PROVIDER_URL` / `VW_PAGER_PROVIDER_URL`. A demo has no provider, and without
one the shipped policy's sms/pager contacts would have no notifier: `vward alerting` warns at
start and those escalations would wait in the outbox. The demo points both variables at this
endpoint instead, so an escalation out of the demo ward really leaves through the outbox and
the person watching the console sees who would have been paged, and with what.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A page is one SMS segment (the notifier cuts it to 160 characters); anything much larger
# is not a page, and the endpoint refuses it rather than reading it.
MAX_BODY_BYTES = 64 * 1024


def page_line(body: bytes) -> str | None:
    """The console line for one provider request (pure); None for something not a page."""
    try:
        page = json.loads(body)
    except ValueError:
        return None
    if not isinstance(page, dict) or not isinstance(page.get("to"), str):
        return None
    return f"  page → {page['to']}: {page.get('message', '')}"


@contextlib.contextmanager
def demo_pager(say: Callable[[str], None] = print) -> Iterator[tuple[str, str]]:
    """Serve the endpoint on a free loopback port for the duration; yields (URL, token).

    The token is new on every run; a request without it (another local process) is refused,
    as a real provider refuses an unauthenticated one."""
    token = secrets.token_urlsafe(24)
    expected = f"Bearer {token}".encode()

    class _Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                self.send_error(401)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_error(413)
                return
            line = page_line(self.rfile.read(length))
            if line is None:
                self.send_error(400, "not a page: JSON with a 'to' field expected")
                return
            say(line)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            del format, args  # the page line is the log

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-pager", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pages", token
    finally:
        server.shutdown()
        server.server_close()
