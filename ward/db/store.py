"""The reading store: bulk writes by COPY, latest values, ranges and downsampled trends.

Writes go through a temporary staging table filled by `COPY … FROM STDIN (FORMAT BINARY)`,
then one `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` into `readings`: exact
duplicates (same device, code and measured-at) change nothing and are reported back, so the
gateway can answer "duplicate". A key already stored with another value or unit is no
duplicate but a conflicting measurement: when some keys were not inserted, one more query
(same transaction) tells the two apart (`write_checked`). `latest_readings` is updated in the
same transaction.

All SQL is composed with psycopg.sql; nothing here holds clinical logic.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ward.domain.readings import Reading, ReadingRow

Conn = psycopg.Connection[Any]

_COLUMNS = (
    "device_id", "code", "measured_at", "value", "unit", "patient_id", "received_at",
    "msg_id", "late", "source_value", "source_unit",
)
_TYPES = (
    "text", "text", "timestamptz", "float8", "text", "int8", "timestamptz",
    "text", "bool", "float8", "text",
)


# Only ever forward: a late reading never replaces a newer latest value.
_UPSERT_LATEST = sql.SQL(
    "ON CONFLICT (patient_id, code) DO UPDATE "
    "SET measured_at = EXCLUDED.measured_at, value = EXCLUDED.value, "
    "unit = EXCLUDED.unit, device_id = EXCLUDED.device_id "
    "WHERE l.measured_at < EXCLUDED.measured_at"
)


@dataclass(frozen=True, slots=True)
class LatestValue:
    patient_id: int
    code: str
    measured_at: dt.datetime
    value: float
    unit: str
    device_id: str


@dataclass(frozen=True, slots=True)
class StoredValue:
    """What `readings` already holds at a key a write tried to store another value (or unit) at."""

    value: float
    unit: str
    msg_id: str | None


@dataclass(frozen=True, slots=True)
class Written:
    """`ReadingStore.write_checked`'s answer, aligned with the readings written.

    `inserted[i]`: reading i was newly stored (a key given twice is True twice if it was new).
    `conflicts[i]`: reading i was not stored because its key already holds another value or
    unit (that stored reading); a reading neither inserted nor in `conflicts` is an exact
    duplicate. A key repeated within the batch is compared with the stored reading only.
    """

    inserted: list[bool]
    conflicts: dict[int, StoredValue]


# The batch's readings that were not inserted, against the stored readings at their keys: those
# whose value or unit differ. Positions are 1-based (WITH ORDINALITY) into the arrays passed.
_CONFLICTS_SQL = (
    "SELECT k.i, r.value, r.unit, r.msg_id "
    "FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::float8[], %s::text[]) "
    "WITH ORDINALITY AS k(device_id, code, measured_at, value, unit, i) "
    "JOIN readings r ON r.device_id = k.device_id AND r.code = k.code "
    "AND r.measured_at = k.measured_at "
    "WHERE r.value IS DISTINCT FROM k.value OR r.unit IS DISTINCT FROM k.unit"
)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    bucket: dt.datetime
    avg: float
    min: float
    max: float
    n: int


class ReadingStore:
    """Reads and writes readings on the caller's connection and transaction.

    No cache of "partition exists": it would lie after the caller rolls back the transaction
    that created it (or after retention drops it), and a gateway retrying that batch would
    then fail forever; the partitions are ensured in the pipeline of the batch's INSERT, so
    it costs no round trip of its own. The staging tables are created in the batch's
    transaction too (one round trip before the COPY), unless `prepare_session` created them,
    committed, on that very connection: a committed temporary table lasts as long as the
    session, so that cannot lie, and it spares the round trip (issue 14).
    """

    def __init__(self) -> None:
        # Connections whose staging tables `prepare_session` created and committed.
        self._staged: weakref.WeakSet[Conn] = weakref.WeakSet()

    def prepare_session(self, conn: Conn) -> None:
        """Create the staging tables and commit, on an idle connection (nothing else of the
        caller's is committed); later batches on `conn` skip their creation round trip. On a
        connection in a transaction this does nothing (the batches create them as before)."""
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return
        self._create_stages(conn)
        conn.commit()
        self._staged.add(conn)

    @staticmethod
    def _create_stages(conn: Conn) -> None:
        with conn.pipeline():
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS vw_readings_stage "
                "(LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS vw_latest_stage "
                "(LIKE latest_readings) ON COMMIT DELETE ROWS"
            )

    @staticmethod
    def _ensure_partitions(conn: Conn, readings: Sequence[Reading | ReadingRow]) -> None:
        """Queue (pipeline mode) the creation of the readings' monthly partitions if absent."""
        months = sorted({(r.measured_at.year, r.measured_at.month) for r in readings})
        for year, month in months:
            first = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            conn.execute("SELECT vw_ensure_reading_partition(%s)", (first,))

    def write(self, conn: Conn, readings: Sequence[Reading | ReadingRow], *,
              defer_latest: bool = False) -> set[tuple[str, str, dt.datetime]]:
        """Store `readings` in the caller's transaction; return the keys actually inserted.

        Keys not returned were already stored (duplicates). The caller commits.

        `latest_readings` is brought up to date in the same statement, unless `defer_latest`:
        then the newest new reading per (patient, code) waits in a temporary table, and the
        caller must run `latest_sql()` before it commits (the gateway sends it in the pipeline
        that ends with its COMMIT). Why: the upsert locks one `latest_readings` row per
        patient and code of the batch until the commit, and a second gateway whose batch
        touches the same patients waits for those locks; deferred, they are held for the
        batch's last round trip only (issue 14).
        """
        rows = self._insert(conn, readings, defer_latest, keys=True)
        return {(str(d), str(c), m) for n, d, c, m in rows if n is None}

    def write_marked(self, conn: Conn, readings: Sequence[Reading | ReadingRow], *,
                     defer_latest: bool = False) -> list[bool]:
        """`write`, answered per reading: True where that reading was newly stored (aligned
        with `readings`; a key given twice is True twice if it was new).

        The gateway's answers, metrics, NOTIFY and alerting queue all need it; one pass here,
        and none when the whole batch was new (the usual case), instead of one membership
        pass each over the set of inserted keys (issue 14)."""
        rows = self._insert(conn, readings, defer_latest, keys=False)
        # Every inserted key is one of `readings`' and none twice: as many as there are
        # readings means each of them, and then the keys were not even sent back.
        if any(n == len(readings) for n, *_ in rows):
            return [True] * len(readings)
        inserted = {(str(d), str(c), m) for n, d, c, m in rows if n is None}
        return [(r.device_id, r.code, r.measured_at) in inserted for r in readings]

    def write_checked(self, conn: Conn, readings: Sequence[Reading | ReadingRow], *,
                      defer_latest: bool = False) -> Written:
        """`write_marked`, and which of the readings not stored conflict with the stored one
        (same key, another value or unit) rather than repeat it.

        No extra round trip when every reading was new (the usual batch); otherwise one query,
        in the caller's transaction, over the readings not inserted."""
        inserted = self.write_marked(conn, readings, defer_latest=defer_latest)
        if all(inserted):
            return Written(inserted, {})
        missed = [i for i, new in enumerate(inserted) if not new]
        rows = conn.execute(_CONFLICTS_SQL, (
            [readings[i].device_id for i in missed], [readings[i].code for i in missed],
            [readings[i].measured_at for i in missed], [readings[i].value for i in missed],
            [readings[i].unit for i in missed])).fetchall()
        return Written(inserted, {missed[int(i) - 1]: StoredValue(float(v), str(u), m)
                                  for i, v, u, m in rows})

    def _insert(self, conn: Conn, readings: Sequence[Reading | ReadingRow],
                defer_latest: bool, *, keys: bool) -> list[tuple[Any, ...]]:
        """COPY `readings` into the staging table and INSERT them (`_insert_sql`); the rows
        it answers: (count, None, None, None) once, and (None, device_id, code, measured_at)
        per inserted key — every one if `keys`, else only when fewer than all were inserted."""
        if not readings:
            return []
        if conn not in self._staged:
            self._create_stages(conn)
        # A batch may repeat a key (a device resending within one batch): keep the first.
        with conn.cursor() as cur:
            copy_sql = sql.SQL("COPY vw_readings_stage ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
            )
            with cur.copy(copy_sql) as copy:
                copy.set_types(_TYPES)
                write_row = copy.write_row
                for r in readings:
                    # A ReadingRow is already the row, in column order (the gateway's case).
                    write_row(r if type(r) is ReadingRow else (
                        r.device_id, r.code, r.measured_at, r.value, r.unit, r.patient_id,
                        r.received_at, r.msg_id, r.late, r.source_value, r.source_unit))
            # The partitions and the INSERT in one round trip (pipeline mode); the INSERT
            # empties the staging table itself.
            with conn.pipeline():
                self._ensure_partitions(conn, readings)
                cur.execute(self._insert_sql(defer_latest=defer_latest),
                            {"all_keys": keys, "given": len(readings)})
            return cur.fetchall()

    @staticmethod
    def _insert_sql(*, defer_latest: bool = False) -> sql.Composed:
        # The newest new reading per (patient, code): into latest_readings now, or into the
        # staging table `latest_sql()` reads (deferred).
        latest = sql.SQL(
            "INSERT INTO vw_latest_stage (patient_id, code, measured_at, value, unit, device_id) "
            "SELECT patient_id, code, measured_at, value, unit, device_id FROM newest"
        ) if defer_latest else sql.SQL(
            "INSERT INTO latest_readings AS l "
            "(patient_id, code, measured_at, value, unit, device_id) "
            "SELECT patient_id, code, measured_at, value, unit, device_id FROM newest "
            "{upsert}"
        ).format(upsert=_UPSERT_LATEST)
        # The staging table is emptied by the statement that reads it (DELETE … RETURNING: no
        # statement of its own; needed where one transaction writes several batches, as the
        # ON COMMIT clean-up comes only at the commit). The answer: the count of inserted
        # rows, and their keys only if asked for (`all_keys`) or if some of the `given`
        # were not inserted — a batch of new readings sends no keys back (issue 14: parsing
        # 500 keys was ~1 ms of the gateway's ingest thread per batch).
        return sql.SQL(
            """
            WITH staged AS (
                DELETE FROM vw_readings_stage RETURNING {cols}
            ), inserted AS (
                INSERT INTO readings ({cols})
                SELECT DISTINCT ON (device_id, code, measured_at) {cols}
                FROM staged
                ORDER BY device_id, code, measured_at
                ON CONFLICT ON CONSTRAINT readings_natural_key DO NOTHING
                RETURNING device_id, code, measured_at, value, unit, patient_id
            ), newest AS (
                SELECT DISTINCT ON (patient_id, code)
                       patient_id, code, measured_at, value, unit, device_id
                FROM inserted
                ORDER BY patient_id, code, measured_at DESC
            ), latest AS (
                {latest}
            ), counted AS (
                SELECT count(*) AS n FROM inserted
            )
            SELECT n, NULL::text, NULL::text, NULL::timestamptz FROM counted
            UNION ALL
            SELECT NULL, device_id, code, measured_at FROM inserted
            WHERE %(all_keys)s OR (SELECT n FROM counted) < %(given)s
            """
        ).format(cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), latest=latest)

    @staticmethod
    def latest_sql() -> sql.Composed:
        """The deferred `latest_readings` upsert of `write(…, defer_latest=True)`, and the
        clean-up of its staging table: run both (in this order) before the commit. Rows are
        locked in (patient, code) order, the same in every gateway: waits, never deadlocks."""
        return sql.SQL(
            "WITH upserted AS (INSERT INTO latest_readings AS l "
            "(patient_id, code, measured_at, value, unit, device_id) "
            "SELECT patient_id, code, measured_at, value, unit, device_id FROM vw_latest_stage "
            "ORDER BY patient_id, code {upsert} RETURNING 1) "
            "DELETE FROM vw_latest_stage"
        ).format(upsert=_UPSERT_LATEST)

    @staticmethod
    def latest_values(
        conn: Conn, patient_ids: Iterable[int] | None = None
    ) -> dict[int, dict[str, LatestValue]]:
        """Latest value per code per patient (all patients when `patient_ids` is None)."""
        query = "SELECT patient_id, code, measured_at, value, unit, device_id FROM latest_readings"
        params: tuple[object, ...] = ()
        if patient_ids is not None:
            query += " WHERE patient_id = ANY(%s)"
            params = (list(patient_ids),)
        out: dict[int, dict[str, LatestValue]] = {}
        for row in conn.execute(query, params):
            value = LatestValue(*row)
            out.setdefault(value.patient_id, {})[value.code] = value
        return out

    @staticmethod
    def readings_between(
        conn: Conn,
        patient_id: int,
        start: dt.datetime,
        end: dt.datetime,
        codes: Sequence[str] | None = None,
    ) -> list[Reading]:
        """Readings of one patient with start <= measured_at < end, oldest first.

        Ordered by the whole natural key: two devices' pulse at one instant must come back in
        the same order every time (compression reorders rows that tie on time and code).
        """
        query = sql.SQL(
            "SELECT {cols} FROM readings WHERE patient_id = %s "
            "AND measured_at >= %s AND measured_at < %s {codes} "
            "ORDER BY measured_at, code, device_id"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
            codes=sql.SQL("AND code = ANY(%s)") if codes else sql.SQL(""),
        )
        params: tuple[object, ...] = (patient_id, start, end)
        if codes:
            params += (list(codes),)
        return [
            Reading(
                device_id=d, code=c, measured_at=m, value=v, unit=u, patient_id=p,
                received_at=ra, msg_id=mi, late=la, source_value=sv, source_unit=su,
            )
            for d, c, m, v, u, p, ra, mi, la, sv, su in conn.execute(query, params)
        ]

    @staticmethod
    def trend(
        conn: Conn,
        patient_id: int,
        code: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        bucket: dt.timedelta,
        storage: str = "plain",
    ) -> list[TrendPoint]:
        """Downsampled series: `time_bucket` on TimescaleDB, `date_bin` on plain PostgreSQL."""
        binner = (
            sql.SQL("time_bucket(%s, measured_at)")
            if storage == "timescaledb"
            else sql.SQL("date_bin(%s, measured_at, timestamptz '2000-01-01 00:00:00+00')")
        )
        query = sql.SQL(
            "SELECT {binner} AS b, avg(value), min(value), max(value), count(*) "
            "FROM readings WHERE patient_id = %s AND code = %s "
            "AND measured_at >= %s AND measured_at < %s GROUP BY b ORDER BY b"
        ).format(binner=binner)
        return [
            TrendPoint(b, float(a), float(lo), float(hi), int(n))
            for b, a, lo, hi, n in conn.execute(query, (bucket, patient_id, code, start, end))
        ]
