"""`POST /api/devices` refuses service (`vw-…`) and staff-entry (`staff-…`) ids."""

from __future__ import annotations

from typing import Any

import pytest

from ward.hub.auth import Role


@pytest.mark.parametrize("device_id", ["vw-gateway", "VW-gateway-1", "staff-3"])
def test_reserved_ids_cannot_be_registered(app_client: Any, staff: Any, db: Any,
                                           device_id: str) -> None:
    response = app_client.post("/api/devices", headers=staff(Role.HUB_NURSE).headers,
                               json={"id": device_id, "kind": "pulse_oximeter"})
    assert response.status_code == 422, response.text
    assert "reserved" in response.json()["detail"]
    assert db.execute("SELECT count(*) FROM devices WHERE id = %s",
                      (device_id,)).fetchone() == (0,)
