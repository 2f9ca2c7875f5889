"""The users API and the People screens keep one set of rules (`ward.hub.people`): the same
request gets the same answer, the same change and the same audit row through either."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from ward.hub.auth import Role

Conn = psycopg.Connection[Any]
PASSWORD = "a long password"


def _login(client: TestClient, username: str) -> dict[str, str]:
    token = client.post("/api/auth/token", json={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _user(db: Conn, username: str) -> tuple[int, str, bool]:
    db.rollback()  # see what the app committed
    row = db.execute("SELECT id, role, active FROM users WHERE username = %s",
                     (username,)).fetchone()
    assert row is not None, username
    return int(row[0]), str(row[1]), bool(row[2])


def _audited(db: Conn, user_id: int) -> list[tuple[str, object]]:
    rows = db.execute("SELECT action, detail FROM audit_log WHERE entity = 'user' "
                      "AND entity_id = %s ORDER BY id", (str(user_id),)).fetchall()
    return [(str(a), d.get("fields")) for a, d in rows]


def test_user_api_keeps_the_people_screens_rules(app_client: TestClient, db: Conn,
                                                 staff: Callable[[Role], Any]) -> None:
    admin = staff(Role.ADMIN)
    api, page = admin.headers, {**admin.headers, "Accept": "text/html"}
    me, _, _ = _user(db, admin.username)

    # Created through either, the name is stored trimmed and lower-case.
    made = app_client.post("/people", headers=page, follow_redirects=False, data={
        "username": "Page.Nurse", "display_name": "Page Nurse", "role": "hub_nurse",
        "password": PASSWORD})
    assert made.status_code == 303
    created = app_client.post("/api/users", headers=api, json={
        "username": "Api.Nurse", "display_name": "Api Nurse", "role": "hub_nurse",
        "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "api.nurse"

    # A taken username: 409 through either, with the same message.
    dup_page = app_client.post("/people", headers=page, data={
        "username": "api.nurse", "display_name": "Again", "role": "admin",
        "password": PASSWORD})
    assert dup_page.status_code == 409
    assert "the username &#39;api.nurse&#39; is taken" in dup_page.text
    dup_api = app_client.post("/api/users", headers=api, json={
        "username": "page.nurse", "display_name": "Again", "role": "admin",
        "password": PASSWORD})
    assert dup_api.status_code == 409
    assert dup_api.json()["detail"] == "the username 'page.nurse' is taken"

    # A role change ends the user's live sessions, through either.
    page_id, _, _ = _user(db, "page.nurse")
    api_id, _, _ = _user(db, "api.nurse")
    page_bearer, api_bearer = _login(app_client, "page.nurse"), _login(app_client, "api.nurse")
    assert app_client.post(f"/people/{page_id}/role", headers=page, data={"role": "clinician"},
                           follow_redirects=False).status_code == 303
    changed = app_client.patch(f"/api/users/{api_id}", headers=api, json={"role": "clinician"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "clinician"
    assert app_client.get("/api/me", headers=page_bearer).status_code == 401
    assert app_client.get("/api/me", headers=api_bearer).status_code == 401

    # An admin cannot deactivate or demote their own account: 409 through either.
    own_page = app_client.post(f"/people/{me}/active", headers=page, data={"active": "false"})
    assert own_page.status_code == 409
    assert "you cannot deactivate your own account" in own_page.text
    own_off = app_client.patch(f"/api/users/{me}", headers=api, json={"active": False})
    assert own_off.status_code == 409
    assert own_off.json()["detail"] == "you cannot deactivate your own account"
    own_down = app_client.patch(f"/api/users/{me}", headers=api, json={"role": "clinician"})
    assert own_down.status_code == 409
    assert _user(db, admin.username)[1:] == ("admin", True)
    assert app_client.get("/api/me", headers=api).status_code == 200

    # Deactivated through either: the same audit trail for the same changes.
    assert app_client.post(f"/people/{page_id}/active", headers=page, data={"active": "false"},
                           follow_redirects=False).status_code == 303
    assert app_client.patch(f"/api/users/{api_id}", headers=api,
                            json={"active": False}).status_code == 200
    assert _audited(db, page_id) == _audited(db, api_id) == [
        ("create", None), ("update", ["role"]), ("deactivate", ["active"])]
    assert app_client.get(f"/api/users/{page_id}", headers=api).json()["active"] is False
    assert app_client.get("/api/users/999999", headers=api).status_code == 404


def test_user_api_changes_name_phone_and_password(app_client: TestClient, db: Conn,
                                                  staff: Callable[[Role], Any]) -> None:
    api = staff(Role.ADMIN).headers
    created = app_client.post("/api/users", headers=api, json={
        "username": "sam", "display_name": "Sam", "role": "clinician", "password": PASSWORD,
        "phone": "07700 900000"})
    uid = created.json()["id"]
    bearer = _login(app_client, "sam")
    kept = app_client.patch(f"/api/users/{uid}", headers=api, json={"display_name": " Dr Sam "})
    assert (kept.json()["display_name"], kept.json()["phone"]) == ("Dr Sam", "07700 900000")
    assert app_client.get("/api/me", headers=bearer).status_code == 200  # a name is no reason
    cleared = app_client.patch(f"/api/users/{uid}", headers=api, json={"phone": None})
    assert cleared.json()["phone"] is None
    short = app_client.patch(f"/api/users/{uid}", headers=api, json={"password": "short"})
    assert short.status_code == 422
    moved = app_client.patch(f"/api/users/{uid}", headers=api,
                             json={"password": "another long password"})
    assert moved.status_code == 200
    assert app_client.get("/api/me", headers=bearer).status_code == 401  # a new password
    assert [a for a, _ in _audited(db, uid)] == ["create", "update", "update", "update"]
    assert _audited(db, uid)[-1] == ("update", ["password"])
