"""The gateway's decisions over one batch, as pure functions: no broker, no database, no clock.

Stages after `gateway.decode`: check the device (registered, active), attribute every reading
to the patient the device was assigned to at `measured_at`, build the `Reading`s to store, the
dead letters to keep and the statuses to upsert (`plan_batch`); then, once the store has said
which readings were new, what each message stored (`stored_of`, once per batch) and the
answer to each device (`result_for`).

Exactly-once bookkeeping: within one batch a reading key is *claimed* by the first message
that carries it; a later message in the same batch (a device resending before its PUBACK came
back) is answered `duplicate`, exactly as it would be in a later batch.

Conflicts: a reading with the key of one already stored (or claimed earlier in the batch by
another message) but another value or unit is no duplicate: it is rejected with
`conflicting_reading` (its value and the stored one in the detail) and its message is
dead-lettered, so nothing a device sends is dropped silently. In-batch conflicts are found by
`plan_batch`; conflicts with stored readings only once the store has answered (`stored_of`,
`settle`, `dead_letters_of`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from typing import NamedTuple, Protocol

from gateway.contract import (
    Channel,
    ErrorOut,
    RejectReason,
    ResultPayload,
    ResultStatus,
    encode_accepted,
    encode_result,
)
from gateway.decode import (
    Decoded,
    DecodedMessage,
    DecodedReading,
    DecodedStatus,
    Problem,
    Rejection,
)
from ward.domain.readings import ReadingRow

Key = tuple[str, str, dt.datetime]


class _Device(Protocol):
    @property
    def active(self) -> bool: ...


class DeviceView(Protocol):
    """What the pipeline needs of a device (`ward.db.registry.DeviceRecord` fits)."""

    @property
    def device(self) -> _Device: ...

    def patient_at(self, at: dt.datetime) -> int | None: ...


Lookup = Callable[[str], DeviceView | None]


class StoredValue(Protocol):
    """A stored reading a new one conflicts with (`ward.db.store.StoredValue` fits)."""

    @property
    def value(self) -> float: ...
    @property
    def unit(self) -> str: ...
    @property
    def msg_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    device_id: str | None
    msg_id: str | None
    reason: RejectReason  # the first problem's reason (all of them are in `detail`)
    detail: str
    payload: bytes


class Outcome(NamedTuple):
    """What became of one MQTT message; `answer` says whether to publish a result.

    A named tuple (one per message; a frozen dataclass cost three times as much, issue 14)."""

    device_id: str | None
    msg_id: str | None
    # Readings this message is first in the batch to carry: the next `claimed` of
    # `BatchPlan.readings`, after those of the messages before it.
    claimed: int
    valid: int  # readings that passed every check (new or duplicate)
    problems: tuple[Problem, ...]
    answer: bool


@dataclass(frozen=True, slots=True)
class BatchPlan:
    readings: tuple[ReadingRow, ...]
    outcomes: tuple[Outcome, ...]  # aligned with the batch's messages
    dead_letters: tuple[DeadLetter, ...]
    statuses: tuple[DecodedStatus, ...]
    # The batch as given to `plan_batch` (aligned with `outcomes`): read only when the store
    # found conflicts, to name each conflicting reading and dead-letter its message.
    messages: tuple[tuple[str, bytes, dt.datetime, Decoded], ...] = ()


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store newly stored of a batch, per reading and per message (`stored_of`).

    Computed once per batch and read by the answers, the metrics, NOTIFY and the alerting
    queue: each of them testing reading keys against the set of inserted keys cost ~11 % of
    a single gateway's samples together (py-spy, bench_ingest g1a, issue 14)."""

    readings: tuple[bool, ...]  # aligned with `BatchPlan.readings`
    outcomes: tuple[bool, ...]  # aligned with `BatchPlan.outcomes`: stored at least one
    count: int  # readings newly stored
    # Per message (index into `outcomes`) with readings that conflict with stored ones: those
    # problems (`conflicting_reading`), not yet in `BatchPlan.outcomes` (`settle` adds them).
    conflicts: Mapping[int, tuple[Problem, ...]] = field(default_factory=dict)

    @staticmethod
    def concat(parts: Iterable[Stored]) -> Stored:
        """The parts of a batch written one message at a time, as one (their plans in order)."""
        parts = list(parts)
        conflicts: dict[int, tuple[Problem, ...]] = {}
        at = 0
        for p in parts:
            conflicts.update({at + i: found for i, found in p.conflicts.items()})
            at += len(p.outcomes)
        return Stored(tuple(f for p in parts for f in p.readings),
                      tuple(f for p in parts for f in p.outcomes), sum(p.count for p in parts),
                      conflicts)


# `tuple.__new__(cls, values)` makes a named tuple without its generated `__new__` (a Python
# frame per call: 3.6 % of samples, issue 14); `values` must be complete, in field order.
_new = tuple.__new__


def describe(problems: Iterable[Problem]) -> str:
    """One line per problem: `[index] reason: detail` (index only for per-reading ones)."""
    return "\n".join(
        (f"[{p.index}] " if p.index is not None else "") + f"{p.reason.value}: {p.detail}"
        for p in problems
    )


def _device_problem(record: DeviceView | None, device_id: str) -> Problem | None:
    if record is None:
        return Problem(RejectReason.UNKNOWN_DEVICE, f"device {device_id!r} is not registered")
    if not record.device.active:
        return Problem(RejectReason.DEVICE_INACTIVE, f"device {device_id!r} is deactivated")
    return None


def _dead_letter(topic: str, payload: bytes, device_id: str | None, msg_id: str | None,
                 problems: Sequence[Problem]) -> DeadLetter:
    return DeadLetter(topic, device_id, msg_id, problems[0].reason, describe(problems), payload)


def plan_batch(
    messages: Sequence[tuple[str, bytes, dt.datetime, Decoded]],
    lookup: Lookup,
) -> BatchPlan:
    """Decide a batch of decoded messages: (topic, payload, received_at, decoded) each."""
    readings: list[ReadingRow] = []
    outcomes: list[Outcome] = []
    dead: list[DeadLetter] = []
    statuses: list[DecodedStatus] = []
    claimed_in_batch: dict[Key, ReadingRow] = {}
    for topic, payload, received_at, decoded in messages:
        if isinstance(decoded, Rejection):
            dead.append(_dead_letter(topic, payload, decoded.device_id, decoded.msg_id,
                                     decoded.problems))
            answer = decoded.device_id is not None and decoded.channel is not Channel.RESULTS
            outcomes.append(Outcome(decoded.device_id, decoded.msg_id, 0, 0, decoded.problems,
                                    answer))
            continue
        record = lookup(decoded.device_id)
        refused = _device_problem(record, decoded.device_id)
        if isinstance(decoded, DecodedStatus):
            if refused is not None:
                dead.append(_dead_letter(topic, payload, decoded.device_id, None, [refused]))
                outcomes.append(Outcome(decoded.device_id, None, 0, 0, (refused,), True))
            else:
                # A will message carries no time: it was reported when it arrived.
                statuses.append(decoded if decoded.sent_at is not None
                                else replace(decoded, sent_at=received_at))
                outcomes.append(Outcome(decoded.device_id, None, 0, 0, (), False))
            continue
        msg: DecodedMessage = decoded
        if refused is not None or record is None:
            refusal: tuple[Problem, ...] = (refused,) if refused is not None else ()
            dead.append(_dead_letter(topic, payload, msg.device_id, msg.msg_id, refusal))
            outcomes.append(Outcome(msg.device_id, msg.msg_id, 0, 0, refusal, True))
            continue
        problems_list = list(msg.problems)
        first_claim = len(readings)  # this message's claims: readings[first_claim:]
        valid = 0
        device_id, msg_id = msg.device_id, msg.msg_id
        for r in msg.readings:
            measured_at = r.measured_at
            patient_id = record.patient_at(measured_at)
            if patient_id is None:
                problems_list.append(Problem(
                    RejectReason.NO_PATIENT_ASSIGNMENT,
                    f"device {device_id!r} was assigned to no patient at "
                    f"{measured_at.isoformat()}", r.index))
                continue
            key = (device_id, r.code, measured_at)
            if (first := claimed_in_batch.get(key)) is None:
                claimed_in_batch[key] = row = _new(ReadingRow, (
                    device_id, r.code, measured_at, r.value, r.unit, patient_id, received_at,
                    msg_id, r.late, r.source_value, r.source_unit))
                readings.append(row)
            elif first.value != r.value or first.unit != r.unit:
                problems_list.append(_batch_conflict(r, first))
                continue
            valid += 1  # new, or a same-valued resend within the batch (`duplicate`)
        if len(problems_list) > 1:
            problems_list.sort(key=lambda p: -1 if p.index is None else p.index)
        problems = tuple(problems_list)
        if problems:
            dead.append(_dead_letter(topic, payload, msg.device_id, msg.msg_id, problems))
        outcomes.append(_new(Outcome, (msg.device_id, msg.msg_id, len(readings) - first_claim,
                                       valid, problems, True)))
    return BatchPlan(tuple(readings), tuple(outcomes), tuple(dead), tuple(statuses),
                     tuple(messages))


def _amount(value: float, unit: str) -> str:
    return f"{value} {unit}" if unit else f"{value}"


def _conflict(code: str, measured_at: dt.datetime, value: float, unit: str, other: str) -> str:
    return (f"{code} at {measured_at.isoformat()}: {_amount(value, unit)} conflicts with "
            f"{other}; not stored (the reading kept is the first)")


def _batch_conflict(r: DecodedReading, first: ReadingRow) -> Problem:
    return Problem(RejectReason.CONFLICTING_READING, _conflict(
        r.code, r.measured_at, r.value, r.unit,
        f"message {first.msg_id!r} of the same batch carries "
        f"{_amount(first.value, first.unit)}"), r.index)


def _store_conflicts(plan: BatchPlan, readings: Sequence[bool],
                     conflicts: Mapping[int, StoredValue]) -> dict[int, tuple[Problem, ...]]:
    """Per message, its readings that conflict with a stored one: the claimed reading the store
    refused, and any same-valued resend of it in a later message of the batch."""
    stored_at = {plan.readings[i].key: value for i, value in conflicts.items()
                 if not readings[i]}
    out: dict[int, tuple[Problem, ...]] = {}
    for i, (outcome, message) in enumerate(zip(plan.outcomes, plan.messages, strict=True)):
        decoded = message[3]
        if not isinstance(decoded, DecodedMessage) or not outcome.valid:
            continue
        flagged = {p.index for p in outcome.problems}
        found = tuple(
            Problem(RejectReason.CONFLICTING_READING, _conflict(
                r.code, r.measured_at, r.value, r.unit,
                f"the stored {_amount(value.value, value.unit)} (message {value.msg_id!r})"),
                r.index)
            for r in decoded.readings
            if r.index not in flagged
            and (value := stored_at.get((decoded.device_id, r.code, r.measured_at))) is not None)
        if found:
            out[i] = found
    return out


def stored_of(plan: BatchPlan, readings: Sequence[bool],
              conflicts: Mapping[int, StoredValue] | None = None) -> Stored:
    """What `plan` stored, from the store's answer per reading (`ReadingStore.write_checked`:
    `inserted` and `conflicts`, aligned with `plan.readings`)."""
    count = sum(readings)
    if count == len(readings):  # the usual batch: everything new, no reading to look at
        outcomes = tuple(o.claimed > 0 for o in plan.outcomes)
    else:
        flags: list[bool] = []
        at = 0
        for o in plan.outcomes:
            flags.append(any(readings[at:at + o.claimed]))
            at += o.claimed
        outcomes = tuple(flags)
    if conflicts:
        return Stored(tuple(readings), outcomes, count,
                      _store_conflicts(plan, readings, conflicts))
    return Stored(tuple(readings), outcomes, count)


def _merged(outcome: Outcome, found: tuple[Problem, ...]) -> Outcome:
    problems = sorted((*outcome.problems, *found),
                      key=lambda p: -1 if p.index is None else p.index)
    return outcome._replace(valid=outcome.valid - len(found), problems=tuple(problems))


def settle(plan: BatchPlan, stored: Stored) -> BatchPlan:
    """`plan` with the conflicts the store found (`Stored.conflicts`) among its outcomes'
    problems (no longer counted valid): what the answers and the metrics read."""
    if not stored.conflicts:
        return plan
    return replace(plan, outcomes=tuple(
        _merged(o, found) if (found := stored.conflicts.get(i)) else o
        for i, o in enumerate(plan.outcomes)))


def dead_letters_of(plan: BatchPlan, stored: Stored) -> tuple[DeadLetter, ...]:
    """The batch's dead letters, with the store's conflicts: a message with conflicting
    readings is kept whole, all its problems listed (its earlier letter, if any, replaced)."""
    if not stored.conflicts:
        return plan.dead_letters
    settled = settle(plan, stored).outcomes
    letters = list(plan.dead_letters)
    extra: list[DeadLetter] = []
    # `plan_batch` keeps one letter per message with problems, in the messages' order.
    at = 0
    for i, outcome in enumerate(plan.outcomes):
        if i in stored.conflicts:
            topic, payload = plan.messages[i][0], plan.messages[i][1]
            letter = _dead_letter(topic, payload, outcome.device_id, outcome.msg_id,
                                  settled[i].problems)
            if outcome.problems:  # the message already has its letter: replace it
                letters[at] = letter
            else:
                extra.append(letter)
        at += bool(outcome.problems)
    return (*letters, *extra)


def result_for(outcome: Outcome, stored: bool, *,
               problems_only: bool = False) -> ResultPayload | None:
    """The device's answer once the batch is committed (None: nothing to say); `stored`:
    something of this message was newly stored (`Stored.outcomes`).

    `problems_only` (`VW_GATEWAY_RESULTS=problems`): a clean accept — something new stored and
    no problem — gets no result; its PUBACK after the commit already says it all.
    """
    if not outcome.answer:
        return None
    if problems_only and stored and not outcome.problems:
        return None
    errors = [ErrorOut(code=p.reason, detail=p.detail, index=p.index) for p in outcome.problems]
    if stored:
        status = ResultStatus.ACCEPTED
    elif outcome.valid:
        status = ResultStatus.DUPLICATE
    else:
        status = ResultStatus.REJECTED
    return ResultPayload(msg_id=outcome.msg_id, status=status, errors=errors)


def answer(outcome: Outcome, stored: bool, *, problems_only: bool = False) -> bytes | None:
    """`result_for`, encoded (None: nothing to say); a clean accept skips the model."""
    if outcome.answer and outcome.msg_id is not None and not outcome.problems and stored:
        return None if problems_only else encode_accepted(outcome.msg_id)
    result = result_for(outcome, stored, problems_only=problems_only)
    return None if result is None else encode_result(result)


def patients_of(readings: Sequence[ReadingRow], stored: Sequence[bool]) -> list[int]:
    """Patients with at least one newly stored reading (`Stored.readings`), sorted (for
    NOTIFY and alerting)."""
    return sorted({r.patient_id for r in compress(readings, stored)})
