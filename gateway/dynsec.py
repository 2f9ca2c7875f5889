"""Who may connect to the broker, publish, subscribe and under which client id: the roles and
clients of Mosquitto's dynamic-security plugin, as pure JSON documents.

Why the plugin and not `password_file` + `acl_file` (measured on Mosquitto 2.0.11): the ACL
file grants every SUBSCRIBE (`#`, `+`, any `$share/…` filter) and only filters deliveries, so
a device that joins the gateway's `$share` group takes its turn in the round-robin and each
message it may not read is dropped — another device's readings vanish; and nothing ties a
client id to a username, so a device can take over the gateway's session. The plugin refuses
a subscription its role does not grant (SUBACK 0x87 on MQTT 5, 0x80 on 3.1.1), binds a client
to one client id, and is changed while the broker runs through `$CONTROL/…` (no password file
to rewrite, no SIGHUP). Its 2.0 ACL topics substitute no `%u`/`%c` (measured), so every device
has a role of its own with literal topics.

This module never does I/O: it builds the plugin's initial config file and control-API
commands; `gateway.broker_admin` sends them, `gateway.broker_setup` writes the file.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from gateway.contract import (
    Channel,
    channel_filter,
    commands_topic,
    readings_topic,
    results_topic,
    senml_topic,
    status_topic,
)
from ward.domain.devices import validate_home_device_id

Json = dict[str, Any]

# Service identities: their names start `vw-`, which no device may take
# (ward.domain.devices.RESERVED_ID_PREFIXES).
GATEWAY_USERNAME = "vw-gateway"
ADMIN_USERNAME = "vw-admin"
GATEWAY_ROLE = "vw-gateway"
ADMIN_ROLE = "vw-admin"
DEVICE_ROLE_PREFIX = "device-"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

# The plugin's own hash (what `mosquitto_ctrl dynsec init` writes): PBKDF2-SHA512, 12-byte
# salt, 64-byte key, 101 iterations (its default; it reads the count from each client).
ITERATIONS = 101
SALT_BYTES = 12
KEY_BYTES = 64

# Nothing is allowed unless a role grants it, except receiving what one was allowed to
# subscribe to and unsubscribing (the plugin's own defaults for those two).
DEFAULT_ACL_ACCESS: Json = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


def hashed_password(secret: str, salt: bytes | None = None) -> Json:
    """The `password`, `salt`, `iterations` fields of a client in the plugin's file."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, ITERATIONS, KEY_BYTES)
    return {"password": base64.b64encode(key).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": ITERATIONS}


def _acl(kind: str, topic: str) -> Json:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def device_acls(device_id: str) -> list[Json]:
    """A device publishes its own readings, SenML and status (its will too) and subscribes to
    its own results, status and commands (full-set requests from the platform): literal
    topics, no wildcard, no `$share`."""
    validate_home_device_id(device_id)
    sends = [_acl("publishClientSend", topic(device_id))
             for topic in (readings_topic, senml_topic, status_topic)]
    reads = [_acl(kind, topic(device_id))
             for topic in (results_topic, status_topic, commands_topic)
             for kind in ("subscribeLiteral", "publishClientReceive")]
    return sends + reads


def gateway_acls() -> list[Json]:
    """The gateway (and `vward alerting`, which uses the same service credential) reads every
    device's readings, SenML and status — in any share group, or plainly for a single gateway
    (`VW_MQTT_SHARE_GROUP=""`) — answers on results topics, publishes alerts and sends
    commands to home hubs (`vward alerting`'s outbox)."""
    acls: list[Json] = []
    for ch in (Channel.READINGS, Channel.SENML, Channel.STATUS):
        every = channel_filter(ch)
        acls += [_acl("subscribePattern", f"$share/+/{every}"),
                 _acl("subscribePattern", every),
                 _acl("publishClientReceive", every)]
    acls += [_acl("publishClientSend", channel_filter(Channel.RESULTS)),
             _acl("publishClientSend", channel_filter(Channel.COMMANDS)),
             _acl("publishClientSend", "vw/v1/alerts/#")]
    return acls


def admin_acls() -> list[Json]:
    """The broker admin talks to the plugin's control topic and nothing else."""
    return [_acl(kind, CONTROL_TOPIC + "/#")
            for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")]


def initial_config(admin_secret: str, gateway_secret: str) -> Json:
    """The plugin's config file for a new broker: the admin and the gateway, no device yet."""
    return {
        "defaultACLAccess": DEFAULT_ACL_ACCESS,
        "clients": [
            {"username": ADMIN_USERNAME, "textName": "virtualward broker admin",
             "roles": [{"rolename": ADMIN_ROLE}], **hashed_password(admin_secret)},
            {"username": GATEWAY_USERNAME, "textName": "virtualward gateway and alerting",
             "roles": [{"rolename": GATEWAY_ROLE}], **hashed_password(gateway_secret)},
        ],
        "groups": [],
        "roles": [{"rolename": ADMIN_ROLE, "acls": admin_acls()},
                  {"rolename": GATEWAY_ROLE, "acls": gateway_acls()}],
    }


def get_client(username: str) -> Json:
    return {"command": "getClient", "username": username}


def create_device(device_id: str, secret: str) -> list[Json]:
    """Commands that create a device's role and client, bound to client id = device id."""
    validate_home_device_id(device_id)
    role = device_role(device_id)
    return [
        {"command": "createRole", "rolename": role, "acls": device_acls(device_id)},
        {"command": "createClient", "username": device_id, "password": secret,
         "clientid": device_id, "roles": [{"rolename": role}]},
    ]


def get_role(rolename: str) -> Json:
    return {"command": "getRole", "rolename": rolename}


def same_acls(have: list[Json], want: list[Json]) -> bool:
    """Do two ACL lists grant the same (type, topic, allow) entries?"""
    def key(acls: list[Json]) -> set[tuple[str, str, bool]]:
        return {(str(a.get("acltype")), str(a.get("topic")), bool(a.get("allow"))) for a in acls}
    return key(have) == key(want)


def set_password(username: str, secret: str) -> Json:
    return {"command": "setClientPassword", "username": username, "password": secret}


def is_device_client(client: Json, device_id: str) -> bool:
    """Is a `getClient` answer the device's own client (its role, its client id)?"""
    roles = {r.get("rolename") for r in client.get("roles", [])}
    return (client.get("username") == device_id and client.get("clientid") == device_id
            and roles == {device_role(device_id)})
