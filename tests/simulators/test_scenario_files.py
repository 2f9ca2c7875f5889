"""Scenario files: every shipped one loads; a bad one names its file and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from simulators.scenario import ScenarioError, load, parse, parse_duration, shipped_names

GOOD = """
name: tiny
patients: 3
trajectories: {stable: 1}
kits: [{name: k, share: 1, devices: [pulse_oximeter]}]
"""


def test_the_five_shipped_scenarios_load() -> None:
    names = shipped_names()
    assert {"demo", "quiet-ward", "deteriorations", "noisy-devices", "load-10k"} <= set(names)
    for name in names:
        scenario = load(name)
        assert scenario.name == name
    assert load("demo").duration is None  # the demo runs until stopped
    assert load("demo").patients == 40
    assert load("quiet-ward").patients == 200
    ten_k = load("load-10k")
    assert ten_k.patients * len(ten_k.kits[0].devices) == 10_000


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("patients: 3", "patients: 0"), "patients"),
        (GOOD.replace("patients: 3", "patients: many"), "patients"),
        (GOOD.replace("name: tiny", "name: Tiny Ward!"), "name"),
        (GOOD.replace("{stable: 1}", "{zombie: 1}"), "trajectories.zombie"),
        (GOOD.replace("{stable: 1}", "{stable: 0}"), "trajectories"),
        (GOOD.replace("[pulse_oximeter]", "[toaster]"), "kits.0.devices.0"),
        (GOOD.replace("[pulse_oximeter]", "[]"), "kits.0.devices"),
        (GOOD + "faults: {duplicate: 1.5}\n", "faults.duplicate"),
        (GOOD + "faults: {explode: 0.1}\n", "faults.explode"),
        (GOOD + "duration: soon\n", "duration"),
        (GOOD + "speed: 0.5\n", "speed"),
        (GOOD + "infusion_pumps: 9\n", "infusion_pumps"),
        (GOOD + "onset: {earliest: 5h, latest: 1h}\n", "onset"),
        (GOOD + "colour: blue\n", "colour"),
        (GOOD.replace("patients: 3\n", ""), "patients"),
        (GOOD + "start: 2026-01-05T06:00:00\n", "start"),
    ],
)
def test_bad_scenarios_name_the_file_and_the_field(text: str, field: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(text, source="ward.yaml")
    message = str(caught.value)
    assert message.startswith("ward.yaml: ")
    assert field in message


@pytest.mark.parametrize("text", ["[1, 2", "- just\n- a list\n", "42"])
def test_unparseable_or_non_mapping_files_are_refused_clearly(text: str) -> None:
    with pytest.raises(ScenarioError, match=r"^ward\.yaml: "):
        parse(text, source="ward.yaml")


def test_toml_and_paths(tmp_path: Path) -> None:
    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\npatients = 2\nduration = "2h"\n[trajectories]\nstable = 1\n'
                    '[[kits]]\nname = "k"\nshare = 1\ndevices = ["thermometer"]\n')
    scenario = load(str(toml))
    assert scenario.duration == dt.timedelta(hours=2)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("patients: 3", "patients: -1"))
    with pytest.raises(ScenarioError, match=r"bad\.yaml: patients"):
        load(str(bad))
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(str(tmp_path / "missing.yaml"))
    with pytest.raises(ScenarioError, match="no shipped scenario"):
        load("no-such-scenario")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), (1.5, 1.5), ("90s", 90), ("15m", 900), ("15min", 900), ("2h", 7200),
     ("1.5d", 129600)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["-5m", "5 weeks", "", None, True, -1])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
