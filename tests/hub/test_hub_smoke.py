from __future__ import annotations

from ward.hub.auth import Role


def test_ward_view_lists_admitted(app_client, staff, admit):
    nurse = staff(Role.HUB_NURSE)
    pid = admit()
    r = app_client.get("/api/ward", headers=nurse.headers)
    assert r.status_code == 200, r.text
    assert [row["patient_id"] for row in r.json()["rows"]] == [pid]
    r = app_client.get(f"/api/patients/{pid}/record", headers=nurse.headers)
    assert r.status_code == 200, r.text
    for path in ("/", "/alerts", f"/patients/{pid}", "/reports", "/ward/rows", "/alerts/cards"):
        r = app_client.get(path, headers=nurse.headers)
        assert r.status_code == 200, (path, r.text[-3000:])
