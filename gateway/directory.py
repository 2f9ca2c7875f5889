"""The gateway's in-memory device directory: who is registered, active, assigned when.

Every reading needs its device's assignment history; asking the database per message would
cost a round trip each. The directory is loaded whole at start, a device named in a
`vw_devices` notification is forgotten (and so reloaded on its next message), the whole is
reloaded periodically as a safety net, and a device not found is remembered as missing for a
short while (negative cache) so a stream from an unregistered device costs one query per
window, not one per message. Pure bookkeeping: the loader is the caller's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from ward.db.registry import DeviceRecord

# A device registered just after sending is found again within this window; a stream from an
# unregistered device costs one lookup per window.
NEGATIVE_TTL = dt.timedelta(seconds=5)
# Safety net if a notification is missed (LISTEN connection lost): reload everything.
FULL_REFRESH = dt.timedelta(seconds=60)


class DeviceDirectory:
    def __init__(self) -> None:
        self._records: dict[str, DeviceRecord] = {}
        self._missing_until: dict[str, dt.datetime] = {}
        self._loaded_at: dt.datetime | None = None

    def get(self, device_id: str) -> DeviceRecord | None:
        return self._records.get(device_id)

    def __len__(self) -> int:
        return len(self._records)

    def to_load(self, device_ids: Iterable[str], now: dt.datetime) -> list[str]:
        """Ids neither known nor recently found missing: the caller loads these."""
        wanted = []
        for device_id in set(device_ids):
            if device_id in self._records:
                continue
            until = self._missing_until.get(device_id)
            if until is not None and until > now:
                continue
            wanted.append(device_id)
        return sorted(wanted)

    def merge(self, asked: Iterable[str], loaded: Mapping[str, DeviceRecord],
              now: dt.datetime) -> None:
        self._records.update(loaded)
        for device_id in asked:
            if device_id in loaded:
                self._missing_until.pop(device_id, None)
            else:
                self._missing_until[device_id] = now + NEGATIVE_TTL

    def replace(self, loaded: Mapping[str, DeviceRecord], now: dt.datetime) -> None:
        self._records = dict(loaded)
        self._missing_until.clear()
        self._loaded_at = now

    def forget(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            self._records.pop(device_id, None)
            self._missing_until.pop(device_id, None)

    def refresh_due(self, now: dt.datetime) -> bool:
        return self._loaded_at is None or now - self._loaded_at >= FULL_REFRESH
