"""Ward rows kept in each hub process, recomputed only for the patients an event names.

Building every row costs ~150 ms for 1,000 patients (six set-based queries, NEWS2, Python
objects); a ward of nurses refreshing it would pay that on every request. Rows are cached
here and a row is recomputed when, and only when:

* a `vw_events` notification names the patient (readings, scores, alerts, admissions,
  care plans, device assignments and device status all NOTIFY — the last four through
  triggers, migration 0031, so writers outside the hub are caught too);
* the hub itself changed the patient (`note_change`, applied after the request commits, so
  a client that reads its own write never waits on the notification's round trip);
* time changed what the row says: `WardRow.expires_at` (a live score's parameter goes stale,
  a sparkline point leaves the window, an assignment starts or ends). Overdue, minutes since
  the last observation and device offline are derived at request time from cached instants;
* the LISTEN connection (re)connects (`resync`): everything is reloaded.

A row that only `readings` events named since its facts were read (`WardRow.facts`: the
scores, alerts, admission, care plan and devices it was built from) is rebuilt from a fresh
read of `latest_readings` and those facts (`wardview.refresh_latest`), not from `load`'s
four statements: at 2,000 readings/s nearly every row is stale on every request and the
full rebuild was most of the hub's CPU (py-spy, issue 14). Any other event, `note_change`,
an expired row or a resync still rebuilds from everything.

Correctness rules: a row is trusted only while the LISTEN connection is up (`enabled()`);
otherwise every request reads the database as before. Each computation takes a generation
number before its queries; an invalidation stamped later than that leaves the row stale, so
an event that arrives while a row is being computed is never lost. A full reload runs at
least every `FULL_REFRESH_S` (background task) as a safety net against a silently dead socket.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ward.hub import events, wardview
from ward.hub.wardview import WardRow

Conn = psycopg.Connection[Any]
# Safety net: a change no event announced (a tool writing SQL by hand with no trigger, a
# socket dead without an error) shows within a minute; a reload costs ~150 ms in a
# background thread, once a minute.
FULL_REFRESH_S = 60.0
# If the background reload has not run for this long (task died, loop starved), the next
# request reloads everything itself rather than trust older rows.
FULL_REFRESH_MAX_AGE_S = 3 * FULL_REFRESH_S
# Events that change no ward row (outbox delivery reports).
IGNORED_EVENTS = frozenset({"notification", "notification_failed"})
# The event of new readings (gateway.sink, the hub's staff entry): latest_readings changed
# and nothing else (a staff device assignment announces itself with a `device` event).
READINGS = "readings"
# Memo keys starting so are kept by a rebuild from new readings: each holds the object it was
# derived from and is used only for that same object (wardrow_html's name, admission and
# alert cells, kept with the row's facts; a vital's cell, kept with its `Latest`).
KEPT_MEMO = "kept:"


@dataclass(slots=True)
class Entry:
    """One patient's cached row; `memo` holds derived forms (the API's JSON-ready dict, the
    HTML's fixed parts). `facts_gen`: the generation the row's facts (everything but its
    latest readings) were read at; a rebuild from latest readings alone keeps it, and the
    memo's `KEPT_MEMO` entries (each checks it is used for the object it was made from)."""

    row: WardRow
    gen: int
    memo: dict[str, Any] = field(default_factory=dict)
    facts_gen: int = -1

    def __post_init__(self) -> None:
        if self.facts_gen < 0:
            self.facts_gen = self.gen

    def row_at(self, now: dt.datetime) -> WardRow:
        return wardview.as_of(self.row, now)


@dataclass(frozen=True, slots=True)
class Snapshot:
    entries: list[Entry]
    admitted: int
    beds: int
    cached: bool

    def rows_at(self, now: dt.datetime) -> list[WardRow]:
        return [e.row_at(now) for e in self.entries]


class WardCache:
    """Per-process cache of ward rows; thread-safe (requests run in FastAPI's threadpool)."""

    def __init__(self, enabled: Callable[[], bool]) -> None:
        self._enabled = enabled
        self._compute = threading.Lock()  # one computation at a time
        self._state = threading.Lock()  # held briefly; also taken on the event loop
        self._gen = 0
        self._changed: dict[int, int] = {}  # patient -> generation of its last invalidation
        # patient -> generation of its last invalidation by anything but new readings
        self._changed_facts: dict[int, int] = {}
        self._all_changed = 0  # generation of the last invalidate_all
        self._entries: dict[int, Entry] = {}  # admitted patients
        self._absent: dict[int, int] = {}  # patient -> generation it was found not admitted
        self._full_gen = -1
        self._full_mono = float("-inf")
        self._latest_now = dt.datetime.min.replace(tzinfo=dt.UTC)
        self.recomputed = 0  # rows recomputed since start (for tests and figures)
        self.full_reloads = 0
        self.refreshed = 0  # rows rebuilt from latest readings alone (`refresh_latest`)
        # Switch for the readings-only rebuild (tests compare with it off; always on in use).
        self.readings_only = True

    # -- invalidation (any thread, including the event loop) --------------------------------

    def _next_gen(self) -> int:
        with self._state:
            self._gen += 1
            return self._gen

    def invalidate(self, patient_ids: Iterable[int]) -> None:
        """Anything about these patients may have changed: rebuild their rows in full."""
        with self._state:
            self._gen += 1
            for pid in patient_ids:
                self._changed[pid] = self._gen
                self._changed_facts[pid] = self._gen

    def invalidate_readings(self, patient_ids: Iterable[int]) -> None:
        """Only these patients' latest readings changed (a `readings` event)."""
        with self._state:
            self._gen += 1
            for pid in patient_ids:
                self._changed[pid] = self._gen

    def invalidate_all(self) -> None:
        with self._state:
            self._gen += 1
            self._all_changed = self._gen

    def on_event(self, event: events.WardEvent) -> None:
        """Broadcaster hook: runs before any browser hears of the event."""
        if event.type in (events.CLOSING, *IGNORED_EVENTS):
            return
        if event.type == "resync":
            self.invalidate_all()
        elif event.type == READINGS:
            self.invalidate_readings(event.patient_ids)
        elif event.patient_ids:
            self.invalidate(event.patient_ids)

    # -- reading ----------------------------------------------------------------------------

    def _valid(self, pid: int, entry: Entry, now: dt.datetime) -> bool:
        row = entry.row
        return (self._changed.get(pid, 0) < entry.gen
                and (row.computed_at is None or row.computed_at <= now)
                and (row.expires_at is None or now < row.expires_at))

    def _stale_ids(self, now: dt.datetime, among: Sequence[int] | None = None) -> set[int]:
        """Patients whose row must be recomputed before it is served (of `among`, if given:
        a request for a few rows recomputes only those, not every row changed since)."""
        with self._state:
            if among is None:
                stale = {pid for pid, e in self._entries.items()
                         if not self._valid(pid, e, now)}
                changed: Iterable[tuple[int, int]] = self._changed.items()
            else:
                wanted = set(among)
                stale = {pid for pid in wanted
                         if (e := self._entries.get(pid)) is not None
                         and not self._valid(pid, e, now)}
                changed = [(p, self._changed[p]) for p in wanted if p in self._changed]
            for pid, gen in changed:
                if pid in self._entries:
                    continue
                if self._absent.get(pid, -1) > gen:
                    continue  # known not admitted since its last change
                stale.add(pid)
        return stale

    def _admitted_unsure(self) -> bool:
        """Whether a change not yet recomputed may have admitted or discharged someone (the
        cached rows' count is then not the ward's)."""
        with self._state:
            return any(self._absent.get(p, -1) < g for p, g in self._changed.items())

    def _need_full(self, now: dt.datetime) -> bool:
        if self._full_gen < 0 or self._all_changed > self._full_gen:
            return True
        if time.monotonic() - self._full_mono > FULL_REFRESH_MAX_AGE_S:
            return True
        # A clock moved backwards (tests, or a corrected host clock): rows computed for a
        # later instant may show what has not happened yet.
        return now < self._latest_now

    def reload(self, conn: Conn, *, now: dt.datetime, beds: int) -> None:
        """Recompute every row (startup, resync, and the periodic safety net)."""
        with self._compute:
            self._reload(conn, now=now, beds=beds)

    def _reload(self, conn: Conn, *, now: dt.datetime, beds: int) -> None:
        gen = self._next_gen()
        view = wardview.load(conn, now=now, beds=beds)
        entries = {r.patient_id: Entry(r, gen) for r in view.rows}
        with self._state:
            self._entries = entries
            self._absent = {}
            self._changed = {p: g for p, g in self._changed.items() if g > gen}
            self._changed_facts = {p: g for p, g in self._changed_facts.items() if g > gen}
            self._full_gen = gen
            self._full_mono = time.monotonic()
            self._latest_now = now
        self.recomputed += len(entries)
        self.full_reloads += 1

    def _update(self, conn: Conn, ids: Sequence[int], *, now: dt.datetime, beds: int) -> None:
        gen = self._next_gen()
        view = wardview.load(conn, now=now, beds=beds, patient_ids=ids)
        found = {r.patient_id: r for r in view.rows}
        with self._state:
            self._latest_now = max(self._latest_now, now)
            for pid in ids:
                row = found.get(pid)
                if row is None:
                    self._entries.pop(pid, None)
                    self._absent[pid] = gen
                else:
                    self._entries[pid] = Entry(row, gen)
                    self._absent.pop(pid, None)
                if self._changed.get(pid, gen) < gen:
                    del self._changed[pid]
                if self._changed_facts.get(pid, gen) < gen:
                    del self._changed_facts[pid]
        self.recomputed += len(found)

    def _readings_only(self, stale: set[int], now: dt.datetime) -> list[Entry]:
        """The entries of `stale` whose facts still hold: only new readings named them since
        the facts were read, the row has not expired and was not computed after `now`."""
        if not self.readings_only:
            return []
        with self._state:
            out = []
            for pid in stale:
                entry = self._entries.get(pid)
                if entry is None or entry.row.facts is None:
                    continue
                row = entry.row
                if (self._changed_facts.get(pid, 0) < entry.facts_gen
                        and (row.computed_at is None or row.computed_at <= now)
                        and (row.expires_at is None or now < row.expires_at)):
                    out.append(entry)
            return out

    def _refresh(self, conn: Conn, entries: list[Entry], *, now: dt.datetime) -> None:
        """Rebuild `entries` from latest readings and their facts (see `_readings_only`)."""
        gen = self._next_gen()
        rows = wardview.refresh_latest(conn, [e.row for e in entries], now=now)
        with self._state:
            self._latest_now = max(self._latest_now, now)
            for old, row in zip(entries, rows, strict=True):
                pid = row.patient_id
                if self._entries.get(pid) is not old:
                    continue  # replaced meanwhile (cannot happen under _compute; cheap check)
                kept = {k: v for k, v in old.memo.items() if k.startswith(KEPT_MEMO)}
                self._entries[pid] = Entry(row, gen, kept, facts_gen=old.facts_gen)
                if self._changed.get(pid, gen) < gen:
                    del self._changed[pid]
        self.refreshed += len(rows)

    def snapshot(self, conn: Conn, *, now: dt.datetime, beds: int,
                 patient_ids: Sequence[int] | None = None) -> Snapshot:
        """Rows of every admitted patient (or only `patient_ids`), most acute first."""
        if not self._enabled():
            # Notifications may be missed while LISTEN is down: read the database, and
            # reload everything once it is back.
            self.invalidate_all()
            view = wardview.load(conn, now=now, beds=beds, patient_ids=patient_ids)
            return Snapshot([Entry(r, 0) for r in view.rows], view.admitted, beds, cached=False)
        with self._compute:
            if self._need_full(now):
                self._reload(conn, now=now, beds=beds)
            else:
                stale = self._stale_ids(now, patient_ids)
                cheap = self._readings_only(stale, now)
                if cheap:
                    self._refresh(conn, cheap, now=now)
                    stale -= {e.row.patient_id for e in cheap}
                if stale:
                    self._update(conn, sorted(stale), now=now, beds=beds)
            unsure = patient_ids is not None and self._admitted_unsure()
            with self._state:
                entries = self._entries
                admitted = len(entries)
                if patient_ids is None:
                    chosen = list(entries.values())
                else:
                    chosen = [entries[p] for p in dict.fromkeys(patient_ids) if p in entries]
        if unsure:
            admitted = wardview.admitted_count(conn)
        chosen.sort(key=lambda e: (e.row.sort_key, e.row.patient_id))
        return Snapshot(chosen, admitted, beds, cached=True)


# -- changes made by this process, applied once their transaction commits --------------------

_pending: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()
_pending_lock = threading.Lock()


def track(conn: Conn) -> set[int]:
    """Start collecting the patients this connection's transaction changes."""
    changed: set[int] = set()
    with _pending_lock:
        _pending[conn] = changed
    return changed


def untrack(conn: Conn) -> None:
    with _pending_lock:
        _pending.pop(conn, None)


def note_change(conn: Conn, patient_ids: Iterable[int]) -> None:
    """Record that this transaction changed these patients (see `ward.hub.deps`)."""
    with _pending_lock:
        changed = _pending.get(conn)
    if changed is not None:
        changed.update(patient_ids)
