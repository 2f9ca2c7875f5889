"""The gateway's decisions over one batch, as pure functions: no broker, no database, no clock.

Stages after `gateway.decode`: check the device (registered, active), attribute every reading
to the patient the device was assigned to at `measured_at`, build the `Reading`s to store, the
dead letters to keep and the statuses to upsert (`plan_batch`); then, once the store has said
which keys were new, the answer to each device (`result_for`).

Exactly-once bookkeeping: within one batch a reading key is *claimed* by the first message
that carries it; a later message in the same batch (a device resending before its PUBACK came
back) is answered `duplicate`, exactly as it would be in a later batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
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
from gateway.decode import Decoded, DecodedMessage, DecodedStatus, Problem, Rejection
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
    claimed: tuple[Key, ...]  # keys this message is first in the batch to carry
    valid: int  # readings that passed every check (new or duplicate)
    problems: tuple[Problem, ...]
    answer: bool


@dataclass(frozen=True, slots=True)
class BatchPlan:
    readings: tuple[ReadingRow, ...]
    outcomes: tuple[Outcome, ...]  # aligned with the batch's messages
    dead_letters: tuple[DeadLetter, ...]
    statuses: tuple[DecodedStatus, ...]


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
    claimed_in_batch: set[Key] = set()
    for topic, payload, received_at, decoded in messages:
        if isinstance(decoded, Rejection):
            dead.append(_dead_letter(topic, payload, decoded.device_id, decoded.msg_id,
                                     decoded.problems))
            answer = decoded.device_id is not None and decoded.channel is not Channel.RESULTS
            outcomes.append(Outcome(decoded.device_id, decoded.msg_id, (), 0, decoded.problems,
                                    answer))
            continue
        record = lookup(decoded.device_id)
        refused = _device_problem(record, decoded.device_id)
        if isinstance(decoded, DecodedStatus):
            if refused is not None:
                dead.append(_dead_letter(topic, payload, decoded.device_id, None, [refused]))
                outcomes.append(Outcome(decoded.device_id, None, (), 0, (refused,), True))
            else:
                # A will message carries no time: it was reported when it arrived.
                statuses.append(decoded if decoded.sent_at is not None
                                else replace(decoded, sent_at=received_at))
                outcomes.append(Outcome(decoded.device_id, None, (), 0, (), False))
            continue
        msg: DecodedMessage = decoded
        if refused is not None or record is None:
            refusal: tuple[Problem, ...] = (refused,) if refused is not None else ()
            dead.append(_dead_letter(topic, payload, msg.device_id, msg.msg_id, refusal))
            outcomes.append(Outcome(msg.device_id, msg.msg_id, (), 0, refusal, True))
            continue
        problems_list = list(msg.problems)
        claimed: list[Key] = []
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
            valid += 1
            key = (device_id, r.code, measured_at)
            if key not in claimed_in_batch:
                claimed_in_batch.add(key)
                claimed.append(key)
                readings.append(ReadingRow(device_id, r.code, measured_at, r.value, r.unit,
                                           patient_id, received_at, msg_id, r.late,
                                           r.source_value, r.source_unit))
        if len(problems_list) > 1:
            problems_list.sort(key=lambda p: -1 if p.index is None else p.index)
        problems = tuple(problems_list)
        if problems:
            dead.append(_dead_letter(topic, payload, msg.device_id, msg.msg_id, problems))
        outcomes.append(Outcome(msg.device_id, msg.msg_id, tuple(claimed), valid, problems,
                                True))
    return BatchPlan(tuple(readings), tuple(outcomes), tuple(dead), tuple(statuses))


def result_for(outcome: Outcome, inserted: set[Key], *,
               problems_only: bool = False) -> ResultPayload | None:
    """The device's answer once the batch is committed (None: nothing to say).

    `problems_only` (`VW_GATEWAY_RESULTS=problems`): a clean accept — something new stored and
    no problem — gets no result; its PUBACK after the commit already says it all.
    """
    if not outcome.answer:
        return None
    stored = any(key in inserted for key in outcome.claimed)
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


def answer(outcome: Outcome, inserted: set[Key], *, problems_only: bool = False
           ) -> bytes | None:
    """`result_for`, encoded (None: nothing to say); a clean accept skips the model."""
    if (outcome.answer and outcome.msg_id is not None and not outcome.problems
            and any(key in inserted for key in outcome.claimed)):
        return None if problems_only else encode_accepted(outcome.msg_id)
    result = result_for(outcome, inserted, problems_only=problems_only)
    return None if result is None else encode_result(result)


def patients_of(readings: Iterable[ReadingRow], inserted: set[Key]) -> list[int]:
    """Patients with at least one newly stored reading, sorted (for NOTIFY and alerting)."""
    return sorted({r.patient_id for r in readings if r.key in inserted})


