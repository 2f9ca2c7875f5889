"""A gateway whose SUBSCRIBE the broker refuses stops with a clear error (exit 1) instead of
idling connected while every device's readings go nowhere: the production broker (dynamic
security) refuses the subscription when the gateway runs with a credential whose role does not
grant it — here the broker admin's (`admin.env` given to the gateway instead of `gateway.env`).
"""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from gateway.broker_admin import read_env_file


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_refused_subscription_stops_the_gateway_with_an_error(
        prod_broker: Any, ward: Any, start_service: Any, to_url: Any, protocol: str) -> None:
    admin = read_env_file(prod_broker.folder / "admin.env")
    gw = start_service(["gateway"], {
        "VW_DATABASE_URL": to_url(ward.url),
        "VW_MQTT_URL": prod_broker.plain_url,
        "VW_MQTT_USERNAME": admin["VW_MQTT_USERNAME"],  # vw-admin: $CONTROL/… only
        "VW_MQTT_PASSWORD": admin["VW_MQTT_PASSWORD"],
        "VW_MQTT_CLIENT_ID": f"gw-{uuid.uuid4().hex[:8]}",
        "VW_MQTT_PROTOCOL": protocol,
        "VW_GATEWAY_ALERTING": "false",
        "VW_LOG_LEVEL": "INFO",
    }, name=f"refused-{protocol}")
    try:
        returncode = gw.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway kept running after a refused SUBSCRIBE:\n{gw.log()}")
    log = gw.log()
    assert returncode == 1, log
    assert "mqtt connected" in log  # the credential is valid: only the subscription fails
    assert "mqtt subscription refused" in log
    assert "user=vw-admin" in log
    assert "vw/v1/devices/+/readings" in log  # which filter, in the operator's words
    assert "gateway exits with status 1" in log
    assert "mqtt subscribed" not in log
    assert admin["VW_MQTT_PASSWORD"] not in log
