"""The dynamic-security documents (pure): each device's role holds only its own literal
topics, service and staff ids are refused, hashes are the plugin's own."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway import dynsec
from ward.domain.devices import reserved_identity, validate_home_device_id
from ward.domain.errors import DomainError


def test_a_device_role_names_only_its_own_topics_literally() -> None:
    acls = dynsec.device_acls("pox-1")
    assert {a["topic"] for a in acls} == {f"vw/v1/devices/pox-1/{ch}" for ch in
                                         ("readings", "senml", "status", "results",
                                          "commands")}
    assert not any(c in a["topic"] for a in acls for c in "+#$")
    subscribe = {a["topic"] for a in acls if a["acltype"].startswith("subscribe")}
    assert subscribe == {"vw/v1/devices/pox-1/results", "vw/v1/devices/pox-1/status",
                         "vw/v1/devices/pox-1/commands"}
    assert {a["acltype"] for a in acls if "subscribe" in a["acltype"]} == {"subscribeLiteral"}
    sends = {a["topic"] for a in acls if a["acltype"] == "publishClientSend"}
    assert "vw/v1/devices/pox-1/results" not in sends


def test_the_device_client_is_bound_to_its_own_client_id() -> None:
    role, client = dynsec.create_device("pox-1", "s3cret")
    assert role["rolename"] == "device-pox-1"
    assert (client["username"], client["clientid"]) == ("pox-1", "pox-1")
    assert client["roles"] == [{"rolename": "device-pox-1"}]
    assert dynsec.is_device_client({**client, "password": None}, "pox-1")
    assert not dynsec.is_device_client({"username": "pox-1", "roles": [
        {"rolename": "vw-gateway"}]}, "pox-1")
    assert not dynsec.is_device_client({**client, "clientid": None}, "pox-1")


def test_nothing_is_allowed_by_default() -> None:
    config = dynsec.initial_config("admin-secret", "gateway-secret")
    assert config["defaultACLAccess"]["publishClientSend"] is False
    assert config["defaultACLAccess"]["subscribe"] is False
    assert [c["username"] for c in config["clients"]] == ["vw-admin", "vw-gateway"]
    assert "gateway-secret" not in str(config)


def test_hashes_are_the_plugins_pbkdf2_sha512() -> None:
    fields = dynsec.hashed_password("hello", salt=b"0123456789ab")
    want = hashlib.pbkdf2_hmac("sha512", b"hello", b"0123456789ab", 101, 64)
    assert base64.b64decode(fields["password"]) == want
    assert (base64.b64decode(fields["salt"]), fields["iterations"]) == (b"0123456789ab", 101)


@pytest.mark.parametrize(("device_id", "reserved"), [
    ("vw-gateway", True), ("VW-Gateway", True), ("vw-gateway-1", True), ("vw-admin", True),
    ("vw-anything", True), ("staff-3", True), ("Staff-12", True),
    ("pox-0001", False), ("vwx-1", False), ("staffer-1", False), ("gateway", False),
])
def test_service_and_staff_ids_are_reserved(device_id: str, reserved: bool) -> None:
    assert (reserved_identity(device_id) is not None) is reserved
    if reserved:
        with pytest.raises(DomainError, match="reserved"):
            validate_home_device_id(device_id)
        with pytest.raises(DomainError, match="reserved"):
            dynsec.create_device(device_id, "x")
    else:
        assert validate_home_device_id(device_id) == device_id
