"""Hardening of the hub against hostile clients, tried on a real `vward hub` (uvicorn) process.

Body limits (a 100 MB POST is refused with 413 before it is read, chunked or not), CSRF
(cookie-authenticated changes must come from the hub's own origin) and log-in throttling,
each over real sockets against the subprocess, with the database the hub itself uses.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ward.embedded import free_port
from ward.hub.auth import Role, create_user
from ward.hub.limits import DEFAULT_MAX_BODY, LOGIN_MAX_BODY, hub_limits

PASSWORD = "correct horse battery"
HUNDRED_MB = 100 * 1024 * 1024


@dataclass
class LiveHub:
    base: str
    port: int
    pid: int
    log: Callable[[], str]

    def rss_kib(self, field: str = "VmHWM") -> int:
        """The hub's resident memory (VmHWM: its peak so far) in KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for pid {self.pid}")

    def token(self, username: str = "sister") -> str:
        r = httpx.post(self.base + "/api/auth/token",
                       json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


@pytest.fixture
def live_hub(db: psycopg.Connection[Any], db_url: str, to_url: Callable[[str], str],
             start_service: Callable[..., Any]) -> LiveHub:
    create_user(db, "sister", PASSWORD, role=Role.HUB_NURSE)
    create_user(db, "matron", PASSWORD, role=Role.HUB_NURSE)
    db.commit()
    port = free_port()
    service = start_service(["hub", "--port", str(port)], {
        "VW_DATABASE_URL": to_url(db_url), "VW_LOG_LEVEL": "INFO"},
        ready="Application startup complete", timeout=60, name="hub")
    return LiveHub(f"http://127.0.0.1:{port}", port, service.process.pid, service.log)


def _connect(hub: LiveHub) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response, read until the server closes."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _post_head(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def test_declared_100_mb_body_is_refused_413_before_a_byte_is_read(live_hub):
    with _connect(live_hub) as sock:
        sock.sendall(_post_head("/api/auth/token", f"Content-Length: {HUNDRED_MB}\r\n"))
        status, headers, body = _read_response(sock)  # no body sent: the answer comes anyway
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["type"] == "/api/problems/payload-too-large"
    assert problem["status"] == 413
    assert "x-frame-options" in headers  # the security headers wrap refusals too


def test_chunked_body_is_counted_and_refused_when_it_crosses_the_limit(live_hub):
    token = live_hub.token()
    with _connect(live_hub) as sock:
        sock.sendall(_post_head("/api/referrals",
                                f"Authorization: Bearer {token}\r\n"
                                "Transfer-Encoding: chunked\r\n"))
        chunk = b"x" * 16384
        for _ in range(5):  # 80 KiB > 64 KiB, and never the final zero-length chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, headers, body = _read_response(sock)
    assert status == 413, body
    assert json.loads(body)["type"] == "/api/problems/payload-too-large"
    assert headers["connection"] == "close"
    # A body within the limit still reaches the route (422: not a valid referral).
    small = httpx.post(live_hub.base + "/api/referrals", content=b'{"x": "' + b"y" * 1000 + b'"}',
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/json"})
    assert small.status_code == 422


def _flood(hub: LiveHub, results: list[str]) -> None:
    """One unauthenticated 100 MB POST, sent as fast as the hub takes it."""
    chunk = b"x" * (1024 * 1024)
    try:
        with _connect(hub) as sock:
            sock.sendall(_post_head("/api/auth/token", f"Content-Length: {HUNDRED_MB}\r\n"))
            with contextlib.suppress(OSError):
                for _ in range(HUNDRED_MB // len(chunk)):
                    sock.sendall(chunk)
            status, _, _ = _read_response(sock)
            results.append(str(status))
    except OSError as exc:  # reset before the answer could be read: refused all the same
        results.append(type(exc).__name__)


def test_eight_parallel_100_mb_posts_leave_memory_flat(live_hub):
    assert httpx.get(live_hub.base + "/login").status_code == 200
    before = live_hub.rss_kib()
    results: list[str] = []
    threads = [threading.Thread(target=_flood, args=(live_hub, results)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 8
    assert "422" not in results, results  # never parsed
    assert "200" not in results, results
    grown_mib = (live_hub.rss_kib() - before) / 1024
    # Before the limit the peak grew by ~2.4 GiB (every body buffered whole); now the hub
    # holds at most one 64 KiB read buffer per connection.
    assert grown_mib < 32, (grown_mib, results)
    assert httpx.get(live_hub.base + "/login").status_code == 200


@pytest.mark.parametrize(("method", "path", "limit"), [
    ("POST", "/api/auth/token", LOGIN_MAX_BODY),
    ("POST", "/login", LOGIN_MAX_BODY),
    ("POST", "/login/x", DEFAULT_MAX_BODY),
    ("GET", "/login", DEFAULT_MAX_BODY),
    ("POST", "/api/referrals", DEFAULT_MAX_BODY),
    ("PUT", "/api/patients/1/care-plan/ceiling", DEFAULT_MAX_BODY),
])
def test_each_route_has_its_limit(method, path, limit):
    assert hub_limits().for_request(method, path) == limit
    assert hub_limits(4096).for_request(method, path) == min(limit, 4096)


def _patient(n: int) -> dict[str, str]:
    return {"nhs_number": ["943 476 5919", "401 023 2137", "943 476 5870", "943 476 5889",
                           "943 476 5897"][n],
            "given_name": "Grace", "family_name": f"Hopper{n}", "date_of_birth": "1936-12-09"}


def test_cookie_changes_need_the_hubs_own_origin_bearer_calls_do_not(live_hub, db):
    own = live_hub.base
    foreign = {"Origin": "https://evil.example"}
    # The log-in form itself: a foreign page cannot sign a nurse in (login CSRF).
    creds = {"username": "sister", "password": PASSWORD}
    assert httpx.post(own + "/login", data=creds, headers=foreign).status_code == 403
    with httpx.Client(base_url=own) as browser:
        logged_in = browser.post("/login", data=creds, headers={"Origin": own})
        assert logged_in.status_code == 303, logged_in.text
        assert "vw_session" in browser.cookies
        refused = browser.post("/api/patients", json=_patient(0), headers=foreign)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/api/problems/cross-site-request"
        assert browser.post("/api/patients", json=_patient(0)).status_code == 403  # no Origin
        assert browser.post("/api/patients", json=_patient(0),
                            headers={"Origin": "null"}).status_code == 403
        assert browser.post("/api/patients", json=_patient(0), headers={
            "Origin": "null", "Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert browser.post("/api/patients", json=_patient(0), headers={
            "Referer": "https://evil.example/page"}).status_code == 403
        assert browser.post("/logout", headers=foreign).status_code == 403
        assert browser.get("/api/me").status_code == 200  # reads are unaffected
        assert db.execute("SELECT count(*) FROM patients").fetchone() == (0,)
        # From the hub's own pages: Origin, or Sec-Fetch-Site, or Referer.
        assert browser.post("/api/patients", json=_patient(1),
                            headers={"Origin": own}).status_code == 201
        assert browser.post("/api/patients", json=_patient(2), headers={
            "Origin": "null", "Sec-Fetch-Site": "same-origin"}).status_code == 201
        assert browser.post("/api/patients", json=_patient(3),
                            headers={"Referer": own + "/patients/1"}).status_code == 201
    # Bearer-token calls carry no ambient credential: a foreign Origin does not matter.
    bearer = {"Authorization": f"Bearer {live_hub.token()}", **foreign}
    assert httpx.post(own + "/api/patients", json=_patient(4), headers=bearer).status_code == 201
    db.commit()
    assert db.execute("SELECT count(*) FROM patients").fetchone() == (4,)


def test_two_live_hubs_share_one_lock_under_parallel_guessing(
        live_hub, db, db_url, to_url, start_service):
    """20 parallel wrong passwords for one account, spread over two hub processes: exactly
    `lock_after` are checked (401), the rest refused unchecked (429 with Retry-After)."""
    from ward.hub import throttle
    port = free_port()
    start_service(["hub", "--port", str(port)], {
        "VW_DATABASE_URL": to_url(db_url), "VW_LOG_LEVEL": "INFO"},
        ready="Application startup complete", timeout=60, name="hub-b")
    bases = [live_hub.base, f"http://127.0.0.1:{port}"]
    answers: list[httpx.Response] = []

    def guess(i: int) -> None:
        answers.append(httpx.post(bases[i % 2] + "/api/auth/token", timeout=30,
                                  json={"username": "matron", "password": f"guess {i}"}))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * throttle.ACCOUNT.lock_after + [429] * (
        20 - throttle.ACCOUNT.lock_after)
    assert all(int(r.headers["retry-after"]) > 0 for r in answers if r.status_code == 429)
    right = httpx.post(bases[1] + "/api/auth/token",
                       json={"username": "matron", "password": PASSWORD})
    assert right.status_code == 429  # locked on both, the right password included
    db.commit()
    audited = db.execute("SELECT count(*), array_agg(DISTINCT detail->>'address') FROM audit_log "
                         "WHERE action IN ('login_failed', 'login_refused')").fetchone()
    assert audited == (21, ["127.0.0.1"])


def test_live_ward_view_audits_the_patient_ids_it_shows(live_hub, admit, db):
    first, second = admit(), admit(given="Mary", family="Seacole")
    bearer = {"Authorization": f"Bearer {live_hub.token()}"}
    ward = httpx.get(live_hub.base + "/api/ward", headers=bearer)
    assert ward.status_code == 200
    assert {r["patient_id"] for r in ward.json()["rows"]} == {first, second}
    assert httpx.get(live_hub.base + "/", headers=bearer).status_code == 200
    db.commit()
    rows = db.execute("SELECT patient_ids FROM audit_log WHERE entity = 'ward' ORDER BY id"
                      ).fetchall()
    assert [sorted(r[0]) for r in rows] == [sorted([first, second])] * 2
