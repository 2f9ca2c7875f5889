"""Security: every route is role-protected, sessions and tokens expire, headers, audit."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from ward.hub.app import create_app
from ward.hub.auth import Role
from ward.hub.deps import ROLES_ATTRIBUTE
from ward.settings import Settings

# Routes anyone may call: the log-in form, token exchange, the published API description and
# the orchestrator's probes (which say nothing about patients). Spelt out here, not imported:
# a new public route must be added to this list on purpose.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/auth/token"),
          ("GET", "/api/openapi.json"), ("GET", "/healthz"), ("GET", "/readyz")}
# What a browser sends with a form posted from one of the hub's own pages (TestClient's host).
SAME_ORIGIN = {"Origin": "http://testserver"}


def _roles_of(route: APIRoute) -> set[Role] | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, ROLES_ATTRIBUTE, None)
        if roles is not None:
            return set(roles)
        stack.extend(dep.dependencies)
    return None


def api_routes(routes: Any, prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute with its full path (FastAPI ≥ 0.16x wraps included routers)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            inner = prefix + getattr(route.include_context, "prefix", "")
            found.extend(api_routes(route.original_router.routes, inner))
    return found


def _concrete(path: str) -> str:
    return (path.replace("{patient_id}", "1").replace("{alert_id}", "1")
            .replace("{admission_id}", "1").replace("{device_id}", "dev-1")
            .replace("{user_id}", "1").replace("{parameter}", "pulse"))


def test_every_route_declares_roles_and_refuses_anonymous_callers(app_client: TestClient):
    app: Any = app_client.app
    checked = 0
    for path, route in api_routes(app.routes):
        for method in route.methods:
            if (method, path) in PUBLIC:
                continue
            assert _roles_of(route), f"{method} {path} has no role check"
            response = app_client.request(method, _concrete(path),
                                          headers={"Accept": "application/json"})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["content-type"] == "application/problem+json"
            checked += 1
    assert checked > 30
    # Every allow-listed route exists (a stale entry would hide a renamed route's check).
    mounted = {(m, p) for p, r in api_routes(app.routes) for m in r.methods}
    assert PUBLIC - {("GET", "/api/openapi.json")} <= mounted


@pytest.mark.parametrize(("role", "path", "method", "body", "allowed"), [
    (Role.HUB_NURSE, "/api/users", "GET", None, False),
    (Role.CLINICIAN, "/api/users", "GET", None, False),
    (Role.ADMIN, "/api/users", "GET", None, True),
    (Role.HUB_NURSE, "/api/patients/{pid}/care-plan/spo2-scale", "PUT",
     {"scale": 2, "reason": "hypercapnic COPD"}, False),
    (Role.CLINICIAN, "/api/patients/{pid}/care-plan/spo2-scale", "PUT",
     {"scale": 2, "reason": "hypercapnic COPD"}, True),
    (Role.ADMIN, "/api/patients/{pid}/care-plan/ceiling", "PUT",
     {"ceiling": "palliative", "reason": "ReSPECT"}, False),
    (Role.HUB_NURSE, "/api/admissions/1/discharge", "POST", {"outcome": "died"}, False),
    (Role.HUB_NURSE, "/api/admissions/1/accept", "POST", {}, False),
    (Role.ADMIN, "/api/patients/{pid}/observations", "POST",
     {"observations": [{"code": "resp_rate", "value": 16}]}, False),
    (Role.HUB_NURSE, "/api/ward", "GET", None, True),
    (Role.ADMIN, "/api/ward", "GET", None, True),
])
def test_roles_are_enforced(app_client, staff, admit, role, path, method, body, allowed):
    pid = admit()
    user = staff(role)
    response = app_client.request(method, path.format(pid=pid), json=body,
                                  headers=user.headers)
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert response.json()["type"] == "/api/problems/forbidden"


def test_bearer_token_expires_and_can_be_revoked(app_client, staff, clock, hub_settings):
    nurse = staff(Role.HUB_NURSE)
    assert app_client.get("/api/me", headers=nurse.headers).status_code == 200
    clock.advance(seconds=hub_settings.hub_token_ttl_s + 1)
    assert app_client.get("/api/me", headers=nurse.headers).status_code == 401
    clock.advance(seconds=-(hub_settings.hub_token_ttl_s + 1))
    assert app_client.delete("/api/auth/token", headers=nurse.headers).status_code == 204
    assert app_client.get("/api/me", headers=nurse.headers).status_code == 401


def test_cookie_session_is_httponly_strict_and_expires(app_client, staff, clock, hub_settings):
    staff(Role.HUB_NURSE)
    response = app_client.post("/login", data={"username": "hubnurse1",
                                               "password": "correct horse battery",
                                               "next": "//evil.example/"},
                               headers=SAME_ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # no open redirect
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert f"Max-Age={hub_settings.hub_session_ttl_s}" in cookie
    assert app_client.get("/api/me").status_code == 200  # the client keeps the cookie
    clock.advance(seconds=hub_settings.hub_session_ttl_s + 1)
    page = app_client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_wrong_password_is_refused_and_audited(app_client, staff, db):
    staff(Role.HUB_NURSE)
    response = app_client.post("/api/auth/token",
                               json={"username": "hubnurse1", "password": "wrong"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "wrong" not in response.text.replace("wrong username or password", "")
    r = app_client.post("/login", data={"username": "hubnurse1", "password": "nope"},
                        headers=SAME_ORIGIN, follow_redirects=False)
    assert r.headers["location"].startswith("/login?error=1")
    row = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'login_failed'"
                     ).fetchone()
    assert row is not None
    assert row[0] == "hubnurse1"
    assert "nope" not in str(row[1])


def test_security_headers_on_pages_and_api(app_client, staff):
    nurse = staff(Role.HUB_NURSE)
    for path in ("/", "/api/ward", "/login", "/static/hub.js"):
        headers = app_client.get(path, headers=nurse.headers).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"  # Origin on our own POSTs
        assert headers["x-content-type-options"] == "nosniff"


def test_user_api_never_returns_password_hashes(app_client, staff):
    admin = staff(Role.ADMIN)
    created = app_client.post("/api/users", headers=admin.headers, json={
        "username": "sister.k", "display_name": "Sister K", "role": "hub_nurse",
        "password": "long enough password"})
    assert created.status_code == 201, created.text
    listing = app_client.get("/api/users", headers=admin.headers)
    assert "argon2" not in listing.text
    assert "password" not in listing.text
    token = app_client.post("/api/auth/token", json={"username": "sister.k",
                                                      "password": "long enough password"})
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    off = app_client.patch(f"/api/users/{created.json()['id']}", headers=admin.headers,
                           json={"active": False})
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert app_client.get("/api/me", headers=bearer).status_code == 401


@pytest.mark.parametrize("flag", [True, False])
def test_demo_users_only_with_the_flag(hub_settings: Settings, db: psycopg.Connection[Any],
                                       flag: bool):
    settings = hub_settings.model_copy(update={"demo_users": flag})
    with TestClient(create_app(settings, listen=False)):
        pass
    names = {r[0] for r in db.execute("SELECT username FROM users")}
    assert (names >= {"nurse", "admin"}) is flag
    assert names <= {"nurse", "admin", "doctor", "safety"}


def test_every_patient_read_and_change_is_audited(app_client, staff, db, clock):
    nurse = staff(Role.HUB_NURSE)
    created = app_client.post("/api/patients", headers=nurse.headers, json={
        "nhs_number": "943 476 5919", "given_name": "Grace", "family_name": "Hopper",
        "date_of_birth": "1936-12-09"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    for path in (f"/api/patients/{pid}", f"/api/patients/{pid}/record",
                 f"/api/patients/{pid}/readings", f"/api/patients/{pid}/care-plan",
                 f"/api/fhir/Observation?patient={pid}", f"/patients/{pid}"):
        assert app_client.get(path, headers=nurse.headers).status_code == 200, path
    rows = db.execute("SELECT actor, action, entity, patient_id, at FROM audit_log "
                      "WHERE patient_id = %s ORDER BY id", (pid,)).fetchall()
    actions = [(r[1], r[2]) for r in rows]
    assert actions[0] == ("create", "patient")
    assert ("read", "patient") in actions
    assert ("read", "patient_record") in actions
    assert ("read", "readings") in actions
    assert ("read", "care_plan") in actions
    assert ("read", "fhir_observation") in actions
    assert all(r[0] == "hubnurse1" and r[4] == clock.now for r in rows)
    assert len(rows) >= 7


def _shown_to(db: psycopg.Connection[Any], entity: str) -> list[tuple[str, list[int]]]:
    rows = db.execute("SELECT action, patient_ids FROM audit_log WHERE entity = %s "
                      "AND patient_ids IS NOT NULL ORDER BY id", (entity,)).fetchall()
    return [(str(r[0]), list(r[1])) for r in rows]


def test_lists_audit_every_patient_they_show(app_client, staff, admit, db, clock):
    nurse = staff(Role.HUB_NURSE)
    first, second = admit(), admit(given="Mary", family="Seacole")
    db.execute("INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
               "updated_at) VALUES (%s, 'news2', 'high', 'raised', 'NEWS2 7', %s, %s)",
               (second, clock.now, clock.now))
    device = app_client.post("/api/devices", headers=nurse.headers,
                             json={"id": "ox-audit-1", "kind": "pulse_oximeter"})
    assert device.status_code == 201, device.text
    assigned = app_client.post("/api/devices/ox-audit-1/assignments", headers=nurse.headers,
                               json={"patient_id": first,
                                     "start": "2025-03-10T08:00:00+00:00"})
    assert assigned.status_code == 201, assigned.text
    db.commit()
    for path in ("/api/ward", "/", f"/ward/rows?patient_id={second}", "/api/alerts",
                 "/alerts", "/alerts/cards", "/api/devices", "/api/devices/ox-audit-1",
                 "/api/admissions"):
        assert app_client.get(path, headers=nurse.headers).status_code == 200, path
    ward = _shown_to(db, "ward")
    assert sorted(ward[0][1]) == sorted([first, second])        # GET /api/ward
    assert sorted(ward[1][1]) == sorted([first, second])        # the ward page (rows + queue)
    assert ward[2][1] == [second]                               # one row fetched by the page
    assert [ids for _, ids in _shown_to(db, "alert")] == [[second]] * 3
    assert ("list", [first]) in _shown_to(db, "device")
    read = db.execute("SELECT patient_id FROM audit_log WHERE entity = 'device' "
                      "AND action = 'read'").fetchone()
    assert read == (first,)
    assert sorted(_shown_to(db, "admission")[0][1]) == sorted([first, second])
    # "Who has seen this patient?" finds every one of those reads.
    seen = db.execute("SELECT count(*) FROM audit_log WHERE patient_id = %s "
                      "OR patient_ids @> ARRAY[%s]::bigint[]", (second, second)).fetchone()
    assert seen is not None
    assert seen[0] >= 7
    counts = db.execute("SELECT count(*) FROM audit_log WHERE detail ? 'patients'").fetchone()
    assert counts == (0,)  # no more counts in place of the ids


OWN = "http://hub.test:8000"


@pytest.mark.parametrize(("method", "path", "headers", "refused"), [
    ("GET", "/api/ward", {"cookie": "vw_session=t", "origin": "https://evil.example"}, False),
    ("POST", "/api/patients", {"cookie": "vw_session=t", "origin": OWN}, False),
    ("POST", "/api/patients", {"cookie": "vw_session=t", "origin": "HTTP://HUB.TEST:8000"},
     False),
    ("POST", "/api/patients", {"cookie": "vw_session=t", "origin": "https://evil.example"},
     True),
    ("POST", "/api/patients", {"cookie": "vw_session=t", "origin": "http://hub.test:8001"},
     True),
    ("DELETE", "/api/auth/token", {"cookie": "a=1; vw_session=t"}, True),
    ("PUT", "/api/x", {"cookie": "vw_session=t", "origin": "null"}, True),
    ("PUT", "/api/x", {"cookie": "vw_session=t", "origin": "null",
                       "sec-fetch-site": "same-origin"}, False),
    ("PUT", "/api/x", {"cookie": "vw_session=t", "sec-fetch-site": "same-site"}, True),
    ("PATCH", "/api/x", {"cookie": "vw_session=t", "referer": OWN + "/alerts"}, False),
    ("PATCH", "/api/x", {"cookie": "vw_session=t", "referer": OWN + ".evil.example/"}, True),
    ("POST", "/api/patients", {"cookie": "vw_session=t", "origin": "https://hub.nhs.example"},
     False),  # configured as allowed below
    ("POST", "/api/patients", {"cookie": "vw_session=t", "authorization": "Bearer abc",
                               "origin": "https://evil.example"}, False),
    ("POST", "/api/patients", {"origin": "https://evil.example"}, False),  # nothing to borrow
    ("POST", "/login", {"origin": "https://evil.example"}, True),  # login CSRF
    ("POST", "/login", {}, True),
    ("POST", "/login", {"origin": OWN}, False),
])
def test_cross_site_refusal_table(method, path, headers, refused):
    from ward.hub import csrf
    why = csrf.refusal(method, path, headers, OWN, {"https://hub.nhs.example"})
    assert (why is not None) is refused, why


def test_allowed_origins_setting_is_validated(hub_settings):
    from ward.hub import csrf, deps
    from ward.settings import SettingsError
    assert csrf.SESSION_COOKIE == deps.SESSION_COOKIE
    assert csrf.parse_origins(" https://a.example, http://b.example:8080 ") == {
        "https://a.example", "http://b.example:8080"}
    bad = hub_settings.model_copy(update={"hub_allowed_origins": "https://a.example/path"})
    with pytest.raises(SettingsError, match="VW_HUB_ALLOWED_ORIGINS"):
        create_app(bad, listen=False)
