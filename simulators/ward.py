"""The simulated ward: who the patients are and which devices each one has.

Built deterministically from (scenario, seed, start): the same inputs give the same patients
(NHS numbers from the NHS *test* range 999…, names, pathway, trajectory) and the same device ids,
so `vward simulate --register` and a later `vward simulate` agree without sharing state.

Every random draw comes from a generator seeded by (seed, patient index[, device number]), so a
patient's course does not depend on how many other patients there are or on which process of a
load run simulates it.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from simulators.physiology import Profile, Trajectory, draw_profile
from simulators.scenario import DeviceType, Scenario, WireFormat
from ward.domain.devices import DeviceKind
from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import Pathway, ReferralSource

# NHS England reserves numbers starting 999 for testing: they never name a real person. Each
# scenario gets its own block of the range (by a hash of its name) so two scenarios registered in
# one database rarely share a patient; a shared one is harmless (registration is idempotent).
_TEST_RANGE_START = 999_000_000
_BLOCK = 12_000  # ≥ 10,000 patients plus the ~9 % of numbers with no valid check digit
_BLOCKS = 1_000_000 // _BLOCK

# One hospital-at-home service reports ~80 % step-up, ~20 % step-down (VIRTUAL_WARD.md).
STEP_DOWN_SHARE = 0.2
_STEP_UP_SOURCES = (ReferralSource.GP, ReferralSource.AMBULANCE, ReferralSource.NHS_111,
                    ReferralSource.ED)

_GIVEN = ("Ada", "Ben", "Cara", "Dev", "Edna", "Farid", "Grace", "Huw", "Ines", "Jack", "Kemi",
          "Liam", "Maya", "Niall", "Olu", "Priya", "Quinn", "Rhys", "Sian", "Tom", "Uma", "Vera",
          "Wes", "Yusuf", "Zara")
_FAMILY = ("Adams", "Begum", "Clarke", "Davies", "Evans", "Fraser", "Green", "Hughes", "Iqbal",
           "Jones", "Khan", "Lewis", "Morgan", "Nowak", "Owen", "Patel", "Quayle", "Roberts",
           "Singh", "Taylor", "Usman", "Vaughan", "Walsh", "Young")

DEVICE_KINDS: dict[DeviceType, DeviceKind] = {
    DeviceType.PULSE_OXIMETER: DeviceKind.PULSE_OXIMETER,
    DeviceType.WEARABLE_OXIMETER: DeviceKind.PULSE_OXIMETER,
    DeviceType.BP_CUFF: DeviceKind.BP_CUFF,
    DeviceType.THERMOMETER: DeviceKind.THERMOMETER,
    DeviceType.INFUSION_PUMP: DeviceKind.INFUSION_PUMP,
    DeviceType.HOME_HUB: DeviceKind.HOME_HUB,
}
_SUFFIX = {
    DeviceType.PULSE_OXIMETER: "ox", DeviceType.WEARABLE_OXIMETER: "wear",
    DeviceType.BP_CUFF: "bp", DeviceType.THERMOMETER: "temp",
    DeviceType.INFUSION_PUMP: "pump", DeviceType.HOME_HUB: "hub",
}
MODELS = {
    DeviceType.PULSE_OXIMETER: "SimOx 200", DeviceType.WEARABLE_OXIMETER: "SimWear 3",
    DeviceType.BP_CUFF: "SimCuff A1", DeviceType.THERMOMETER: "SimTherm 9",
    DeviceType.INFUSION_PUMP: "SimFlow elastomeric 240 mL", DeviceType.HOME_HUB: "SimHub app",
}


@dataclass(frozen=True, slots=True)
class SimDevice:
    device_id: str
    type: DeviceType
    wire: WireFormat
    number: int  # position in the patient's kit (seeds the device's generator)
    spot_checks_per_day: int
    interval_s: float  # wearables: seconds between measurements

    @property
    def kind(self) -> DeviceKind:
        return DEVICE_KINDS[self.type]

    @property
    def model(self) -> str:
        return MODELS[self.type]


@dataclass(frozen=True, slots=True)
class SimPatient:
    index: int
    label: str  # "demo-p00001": the simulator's own name for logs
    nhs_number: str  # the ground truth's patient_key
    given_name: str
    family_name: str
    date_of_birth: dt.date
    pathway: Pathway
    source: ReferralSource
    profile: Profile
    devices: tuple[SimDevice, ...]

    @property
    def trajectory(self) -> Trajectory:
        return self.profile.trajectory


def nhs_numbers(scenario_name: str, count: int) -> list[str]:
    """`count` valid NHS numbers from the scenario's block of the 999 test range."""
    block = zlib.crc32(scenario_name.encode()) % _BLOCKS
    base = _TEST_RANGE_START + block * _BLOCK
    numbers: list[str] = []
    candidate = base
    while len(numbers) < count:
        number = with_check_digit(f"{candidate:09d}")
        if number is not None:
            numbers.append(number)
        candidate += 1
        if candidate >= _TEST_RANGE_START + 1_000_000:
            candidate = _TEST_RANGE_START
    return numbers


def _apportion(weights: list[float], total: int) -> list[int]:
    """Largest-remainder apportionment: integer counts summing to `total`."""
    norm = sum(weights)
    exact = [w / norm * total for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def patient_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def build_ward(scenario: Scenario, seed: int, start: dt.datetime) -> list[SimPatient]:
    """Every simulated patient of the scenario with their kit."""
    n = scenario.patients
    mix = np.random.default_rng([seed, 0x5EED])
    trajectories = [t for t, c in zip(scenario.trajectories,
                                      _apportion(list(scenario.trajectories.values()), n),
                                      strict=True) for _ in range(c)]
    mix.shuffle(trajectories)
    kit_of = [k for k, c in zip(scenario.kits, _apportion([k.share for k in scenario.kits], n),
                                strict=True) for _ in range(c)]
    mix.shuffle(kit_of)
    pumped = set(mix.permutation(n)[: scenario.infusion_pumps].tolist())
    step_down_needed = round(STEP_DOWN_SHARE * n) - trajectories.count(Trajectory.STEP_DOWN_RECOVERY)
    numbers = nhs_numbers(scenario.name, n)
    patients: list[SimPatient] = []
    for i in range(n):
        rng = patient_rng(seed, i)
        trajectory = trajectories[i]
        profile = draw_profile(
            i, trajectory, rng, start=start, onset_earliest=scenario.onset.earliest,
            onset_latest=scenario.onset.latest, ramp_hours=scenario.onset.ramp_hours,
            home_oxygen=bool(rng.random() < scenario.home_oxygen),
        )
        if trajectory is Trajectory.STEP_DOWN_RECOVERY:
            pathway = Pathway.STEP_DOWN
        elif trajectory is Trajectory.STABLE and step_down_needed > 0:
            pathway = Pathway.STEP_DOWN
            step_down_needed -= 1
        else:
            pathway = Pathway.STEP_UP
        source = (ReferralSource.HOSPITAL_WARD if pathway is Pathway.STEP_DOWN
                  else _STEP_UP_SOURCES[int(rng.integers(len(_STEP_UP_SOURCES)))])
        label = f"{scenario.name}-p{i:05d}"
        kit = kit_of[i]
        types = list(kit.devices)
        if i in pumped and DeviceType.INFUSION_PUMP not in types:
            types.append(DeviceType.INFUSION_PUMP)
        devices = tuple(
            SimDevice(
                device_id=f"{label}-{_SUFFIX[t]}", type=t,
                wire=WireFormat.SENML if rng.random() < scenario.senml else WireFormat.JSON,
                number=k + 1, spot_checks_per_day=kit.spot_checks_per_day,
                interval_s=kit.wearable_interval.total_seconds(),
            )
            for k, t in enumerate(types)
        )
        age_days = int(rng.integers(45 * 365, 95 * 365))
        patients.append(SimPatient(
            index=i, label=label, nhs_number=numbers[i],
            given_name=_GIVEN[int(rng.integers(len(_GIVEN)))],
            family_name=_FAMILY[int(rng.integers(len(_FAMILY)))],
            date_of_birth=(scenario.start - dt.timedelta(days=age_days)).date(),
            pathway=pathway, source=source, profile=profile, devices=devices,
        ))
    return patients
