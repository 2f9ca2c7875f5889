"""Pieces every router shares: paging, path parameters, role aliases, existence checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import psycopg
from fastapi import Depends, Path, Query
from pydantic import AfterValidator, BaseModel

from ward.db import channels
from ward.hub import wardcache
from ward.hub.auth import (
    ADMINS,
    ALL_ROLES,
    AUDITORS,
    CLINICAL,
    DEVICE_MANAGERS,
    PRESCRIBERS,
    User,
)
from ward.hub.deps import allow
from ward.hub.problems import NotFound
from ward.hub.queries import patients

Conn = psycopg.Connection[Any]
# PostgreSQL bigint: larger ids cannot exist, so they are a validation error, not a 500.
BIGINT_MAX = 2**63 - 1
# 500 rows keep a page under a few hundred kilobytes; the ward view has its own endpoint.
PAGE_MAX = 500

Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="rows to skip")]
PatientId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
AlertId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
AdmissionId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]

Reader = Annotated[User, Depends(allow(*ALL_ROLES))]
Clinical = Annotated[User, Depends(allow(*CLINICAL))]
Prescriber = Annotated[User, Depends(allow(*PRESCRIBERS))]
Admin = Annotated[User, Depends(allow(*ADMINS))]
DeviceManager = Annotated[User, Depends(allow(*DEVICE_MANAGERS))]
Auditor = Annotated[User, Depends(allow(*AUDITORS))]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the edge with a clear message.
    if "\x00" in value:
        msg = "must not contain NUL characters"
        raise ValueError(msg)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def require_patient(conn: Conn, patient_id: int) -> None:
    if not patients.exists(conn, patient_id):
        raise NotFound(f"no patient with id {patient_id}")


def notify(conn: Conn, kind: str, patient_ids: Sequence[int], **extra: Any) -> None:
    """Tell every hub (and its browsers) that these patients changed; sent on commit."""
    payload = json.dumps({"type": kind, "patient_ids": list(patient_ids), **extra})
    channels.notify_events(conn, payload)
    wardcache.note_change(conn, patient_ids)
