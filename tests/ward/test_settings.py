"""Settings: VW_ variables, defaults and errors that name the variable."""

from __future__ import annotations

import pytest

from ward.settings import Settings, SettingsError


def test_defaults_are_local_and_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("VW_DATABASE_URL", "VW_MQTT_URL", "VW_DISPLAY_TIMEZONE"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings.from_env()
    assert settings.database_url is None
    assert settings.database_conninfo().startswith("postgresql://")
    assert settings.display_timezone == "Europe/London"


def test_values_are_read_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VW_HUB_PORT", "8123")
    monkeypatch.setenv("VW_MQTT_URL", "mqtt://broker.example:1883")
    monkeypatch.setenv("VW_HUB_OPENS", "07:30")
    settings = Settings.from_env()
    assert settings.hub_port == 8123
    assert settings.mqtt_url == "mqtt://broker.example:1883"
    assert settings.hub_opens.hour == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VW_HUB_PORT", "not-a-port"),
        ("VW_HUB_PORT", "70000"),
        ("VW_DISPLAY_TIMEZONE", "Mars/Olympus"),
        ("VW_MQTT_URL", "http://x"),
        ("VW_DATABASE_URL", "mysql://x"),
        ("VW_GATEWAY_BATCH_SIZE", "0"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env()


def test_database_password_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VW_DATABASE_URL", "postgresql://u:hunter2@db/x")
    settings = Settings.from_env()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", "5"), ("5.0", "5"), ("v5", "5"), ("3.1.1", "3.1.1"), ("311", "3.1.1"),
     (" MQTTv311 ", "3.1.1")],
)
def test_mqtt_protocol_spellings(monkeypatch: pytest.MonkeyPatch, value: str,
                                 expected: str) -> None:
    monkeypatch.setenv("VW_MQTT_PROTOCOL", value)
    assert Settings.from_env().mqtt_protocol == expected


def test_mqtt_protocol_defaults_to_5_and_refuses_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VW_MQTT_PROTOCOL", raising=False)
    assert Settings.from_env().mqtt_protocol == "5"
    monkeypatch.setenv("VW_MQTT_PROTOCOL", "3.1")
    with pytest.raises(SettingsError, match="VW_MQTT_PROTOCOL"):
        Settings.from_env()
    monkeypatch.setenv("VW_MQTT_PROTOCOL", "5")
    monkeypatch.setenv("VW_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="VW_LOG_FORMAT"):
        Settings.from_env()
