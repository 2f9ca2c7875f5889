"""How much of a device's bad traffic is kept: dead-letter rationing and flood quarantine.

Every rejected message is dead-lettered with its raw bytes so it can be replayed — but one
device (a broken firmware loop, or an attacker holding one device's credentials) must not be
able to grow the database without bound. Per device and per `Rationing.window`:

- the first `payload_bytes` of raw payloads are kept whole; past that, and for any payload
  over the gateway's size limit (`payload_too_large`), only the reason, detail, size and
  SHA-256 digest are kept;
- past `messages` dead letters the device is **quarantined** for `quarantine`: its dead
  letters are then only counted (not stored), one quarantine record (the device alert) says
  when and why, and the gateway warns. Valid readings of a quarantined device are still
  stored: quarantine limits what its garbage costs, never what its measurements say.

Pure: state in, decisions out; `now` is the database's transaction time (the caller's).
Must never do I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gateway.contract import RejectReason
from gateway.pipeline import DeadLetter


@dataclass(frozen=True, slots=True)
class Rationing:
    """The limits, per device. Defaults sized for a ward, reasons below."""

    # An hour: long enough to see a loop, short enough that a device fixed by its owner is
    # back to normal within the next ward round.
    window: dt.timedelta = dt.timedelta(hours=1)
    # A faulty but alive device (a bad unit, a wrong clock) sends at most a reading a minute:
    # 60 an hour; 120 leaves room for a resend of each. Beyond that it is flooding.
    messages: int = 120
    # 1 MiB of raw payloads per device and hour is enough to replay any realistic fault
    # (a native message of ten readings is ~1 KiB; the size limit is 64 KiB).
    payload_bytes: int = 1 << 20
    # Quarantine lasts one window: the device is re-admitted automatically afterwards.
    quarantine: dt.timedelta = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Budget:
    """A device's dead-letter account (one row of `dead_letter_budget`)."""

    device_id: str  # "" for messages that named no device
    window_start: dt.datetime
    messages: int = 0
    payload_bytes: int = 0
    quarantined_until: dt.datetime | None = None
    suppressed: int = 0  # dead letters counted but not stored during the current quarantine
    suppressed_bytes: int = 0

    def quarantined(self, now: dt.datetime) -> bool:
        return self.quarantined_until is not None and now < self.quarantined_until


@dataclass(frozen=True, slots=True)
class Kept:
    """A dead letter to store; `payload` is None when only its digest is kept."""

    letter: DeadLetter
    payload: bytes | None
    dropped: str | None  # why the payload was not kept: "too_large" or "device_budget"


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A device newly quarantined: the device alert."""

    device_id: str
    started_at: dt.datetime
    until: dt.datetime
    detail: str


@dataclass(frozen=True, slots=True)
class Ration:
    kept: tuple[Kept, ...]
    budgets: tuple[Budget, ...]  # every budget touched, as it must be stored
    quarantines: tuple[Quarantine, ...]
    suppressed: int  # dead letters of this batch not stored (device quarantined)


def device_key(letter: DeadLetter) -> str:
    return letter.device_id or ""


def _fresh(budget: Budget | None, key: str, now: dt.datetime, limits: Rationing) -> Budget:
    """The account for `now`: a new window once the last one ended (a quarantine ends too)."""
    if budget is None:
        return Budget(key, now)
    if budget.quarantined(now) or now < budget.window_start + limits.window:
        return budget
    return Budget(key, now)


def ration(letters: Sequence[DeadLetter], budgets: Mapping[str, Budget], now: dt.datetime,
           limits: Rationing) -> Ration:
    """Decide which of `letters` are stored, how, and which devices are quarantined."""
    accounts: dict[str, Budget] = {}
    kept: list[Kept] = []
    quarantines: list[Quarantine] = []
    suppressed = 0
    for letter in letters:
        key = device_key(letter)
        account = accounts.get(key) or _fresh(budgets.get(key), key, now, limits)
        size = len(letter.payload)
        if account.quarantined(now):
            accounts[key] = replace(account, suppressed=account.suppressed + 1,
                                    suppressed_bytes=account.suppressed_bytes + size)
            suppressed += 1
            continue
        if account.messages >= limits.messages:
            until = now + limits.quarantine
            quarantines.append(Quarantine(
                key, now, until,
                f"{account.messages} dead letters ({account.payload_bytes} payload bytes kept) "
                f"since {account.window_start.isoformat()}, over the limit of "
                f"{limits.messages} per {limits.window}; quarantined until {until.isoformat()}"))
            accounts[key] = replace(account, quarantined_until=until, suppressed=1,
                                    suppressed_bytes=size)
            suppressed += 1
            continue
        if letter.reason is RejectReason.PAYLOAD_TOO_LARGE:  # never stored whole
            kept.append(Kept(letter, None, "too_large"))
            accounts[key] = replace(account, messages=account.messages + 1)
        elif account.payload_bytes + size > limits.payload_bytes:
            kept.append(Kept(letter, None, "device_budget"))
            accounts[key] = replace(account, messages=account.messages + 1)
        else:
            kept.append(Kept(letter, letter.payload, None))
            accounts[key] = replace(account, messages=account.messages + 1,
                                    payload_bytes=account.payload_bytes + size)
    return Ration(tuple(kept), tuple(accounts.values()), tuple(quarantines), suppressed)
