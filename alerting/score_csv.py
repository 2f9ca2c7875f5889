"""Score a CSV of observation sets with NEWS2: the logic behind ``vward score FILE.csv``.

For clinical auditors who want to check our scores against their own. Input columns (any
order; other columns are passed through unchanged)::

    resp_rate, spo2, spo2_scale, on_oxygen, systolic_bp, pulse, consciousness, temperature

* An empty cell is a missing parameter (never a normal one); the score is then partial and
  its total a lower bound (see :mod:`alerting.news2`).
* Numbers are plain decimals (``38.05``, ``-1``, ``.5``); they are read as exact decimals and
  quantised to chart resolution by round half up (38.05 °C -> 38.1; RR 20.5 -> 21).
* ``spo2_scale`` is 1 or 2 (empty = 1); ``on_oxygen`` is true/false, yes/no or 1/0 (any
  case); ``consciousness`` is one of A, C, V, P, U.

Output (stdout) is every input column followed by ``news2_total``, ``news2_band``,
``news2_any_single_3``, ``news2_complete`` and one sub-score column per parameter
(``news2_resp_rate`` …, empty when that parameter is missing).

A bad row is reported on stderr as ``data row N (line L): column: reason`` — N counts data
rows from 1 (the header is not counted), L is the file line where the record ends. It is
still written to stdout, with every ``news2_*`` column empty, so output rows line up with
input rows (a row with the wrong number of fields is padded or cut to the header's width);
a scored row always has a ``news2_total``. Exit status: 0 all rows scored,
1 some rows bad, 2 file unreadable or header unusable.
"""

from __future__ import annotations

import _csv
import csv
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TextIO

from alerting.news2 import (
    Consciousness,
    News2Error,
    News2Score,
    Observations,
    Parameter,
    score,
)

EXIT_OK: Final = 0
EXIT_BAD_ROWS: Final = 1
EXIT_UNUSABLE_FILE: Final = 2

NUMERIC_COLUMNS: Final = ("resp_rate", "spo2", "systolic_bp", "pulse", "temperature")
INPUT_COLUMNS: Final = (
    "resp_rate",
    "spo2",
    "spo2_scale",
    "on_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)
SUMMARY_COLUMNS: Final = ("news2_total", "news2_band", "news2_any_single_3", "news2_complete")
OUTPUT_COLUMNS: Final = (*SUMMARY_COLUMNS, *(f"news2_{p}" for p in Parameter))

_DECIMAL: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_BOOLEANS: Final[Mapping[str, bool]] = {
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
}
_SCALES: Final[Mapping[str, int]] = {"": 1, "1": 1, "2": 2}


class RowError(ValueError):
    """A cell that cannot be read; ``column`` names it."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column


@dataclass(frozen=True)
class _Header:
    names: Sequence[str]
    index: Mapping[str, int]


@dataclass(frozen=True)
class _Output:
    rows: _csv.Writer
    stderr: TextIO
    path: str
    line: Callable[[], int]  # file line where the current record ends


def _number(column: str, cell: str) -> Decimal | None:
    if not cell:
        return None
    if not _DECIMAL.fullmatch(cell):
        raise RowError(column, f"not a plain decimal number: {cell!r}")
    return Decimal(cell)


def _on_oxygen(cell: str) -> bool | None:
    if not cell:
        return None
    try:
        return _BOOLEANS[cell.lower()]
    except KeyError:
        raise RowError("on_oxygen", f"expected true/false, yes/no or 1/0, got {cell!r}") from None


def _scale(cell: str) -> int:
    try:
        return _SCALES[cell]
    except KeyError:
        raise RowError("spo2_scale", f"expected 1 or 2 (or empty for 1), got {cell!r}") from None


def _consciousness(cell: str) -> Consciousness | None:
    if not cell:
        return None
    try:
        return Consciousness(cell.upper())
    except ValueError:
        raise RowError("consciousness", f"expected one of A, C, V, P, U, got {cell!r}") from None


def observations_from(cells: Mapping[str, str]) -> Observations:
    """Parse one row's cells (already stripped) into :class:`Observations`."""
    numbers = {column: _number(column, cells[column]) for column in NUMERIC_COLUMNS}
    try:
        return Observations(
            **numbers,
            on_oxygen=_on_oxygen(cells["on_oxygen"]),
            consciousness=_consciousness(cells["consciousness"]),
            spo2_scale=_scale(cells["spo2_scale"]),
        )
    except News2Error as exc:
        raise RowError("row", str(exc)) from exc


def score_cells(result: News2Score) -> list[str]:
    """The ``news2_*`` output cells for a score, in :data:`OUTPUT_COLUMNS` order."""
    summary = [
        str(result.total),
        result.risk.value,
        str(result.any_single_3).lower(),
        str(result.complete).lower(),
    ]
    subs = [str(result.sub_scores[p]) if p in result.sub_scores else "" for p in Parameter]
    return summary + subs


def _read_header(rows: Iterator[list[str]]) -> _Header | str:
    names = next(rows, None)
    if names is None:
        return "file is empty: expected a header row"
    stripped = [name.strip() for name in names]
    missing = [c for c in INPUT_COLUMNS if c not in stripped]
    if missing:
        return f"header is missing required column(s): {', '.join(missing)}"
    repeated = [c for c in INPUT_COLUMNS if stripped.count(c) > 1]
    if repeated:
        return f"header repeats column(s): {', '.join(repeated)}"
    clashes = [c for c in OUTPUT_COLUMNS if c in stripped]
    if clashes:
        return f"header has output column(s) that would be overwritten: {', '.join(clashes)}"
    return _Header(names, {c: stripped.index(c) for c in INPUT_COLUMNS})


def _score_row(header: _Header, row: list[str]) -> list[str]:
    if len(row) != len(header.names):
        raise RowError("row", f"has {len(row)} fields, header has {len(header.names)}")
    cells = {column: row[i].strip() for column, i in header.index.items()}
    return score_cells(score(observations_from(cells)))


def _score_rows(reader: Iterator[list[str]], header: _Header, out: _Output) -> int:
    bad = 0
    for number, row in enumerate(reader, start=1):
        try:
            out.rows.writerow([*row, *_score_row(header, row)])
        except RowError as exc:
            bad += 1
            out.stderr.write(f"{out.path}: data row {number} (line {out.line()}): {exc}\n")
            width = len(header.names)  # keep columns aligned if the row has the wrong length
            cells = row[:width] + [""] * (width - len(row))
            out.rows.writerow([*cells, *([""] * len(OUTPUT_COLUMNS))])
    return bad


def main(path: str, stdout: TextIO, stderr: TextIO) -> int:
    """Score ``path`` to ``stdout``; report problems on ``stderr``; return the exit status."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = _read_header(reader)
            if isinstance(header, str):
                stderr.write(f"{path}: {header}\n")
                return EXIT_UNUSABLE_FILE
            rows = csv.writer(stdout, lineterminator="\n")
            rows.writerow([*header.names, *OUTPUT_COLUMNS])
            output = _Output(rows, stderr, path, lambda: reader.line_num)
            bad = _score_rows(reader, header, output)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        stderr.write(f"{path}: cannot read CSV: {exc}\n")
        return EXIT_UNUSABLE_FILE
    return EXIT_BAD_ROWS if bad else EXIT_OK
