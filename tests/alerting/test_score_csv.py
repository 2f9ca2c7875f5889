"""`vward score FILE.csv` logic: scored rows, partial rows, bad rows and exit codes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from alerting.score_csv import INPUT_COLUMNS, OUTPUT_COLUMNS, main

HEADER = "patient,resp_rate,spo2,spo2_scale,on_oxygen,systolic_bp,pulse,consciousness,temperature"


def run(
    tmp_path: Path, text: str, encoding: str = "utf-8"
) -> tuple[int, list[dict[str, str]], str]:
    path = tmp_path / "obs.csv"
    path.write_text(text, encoding=encoding)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(str(path), stdout, stderr)
    return status, list(csv.DictReader(io.StringIO(stdout.getvalue()))), stderr.getvalue()


def test_scores_complete_rows_and_passes_other_columns_through(tmp_path: Path) -> None:
    status, rows, errors = run(
        tmp_path,
        f"{HEADER}\n"
        "p1,16,98,,false,120,70,A,37.0\n"
        "p2,16,94,1,true,120,70,A,37.0\n"
        "p3,16,97,2,yes,120,70,a,37.0\n"
        "p4,20.5,98,1,NO,120,70,A,38.05\n",
    )
    assert (status, errors) == (0, "")
    assert [r["patient"] for r in rows] == ["p1", "p2", "p3", "p4"]
    assert [r["news2_total"] for r in rows] == ["0", "3", "5", "3"]
    assert [r["news2_band"] for r in rows] == ["low", "low", "medium", "low"]
    assert [r["news2_any_single_3"] for r in rows] == ["false", "false", "true", "false"]
    assert [r["news2_complete"] for r in rows] == ["true"] * 4
    assert rows[1]["news2_spo2"] == "1"
    assert rows[1]["news2_air_or_oxygen"] == "2"
    assert rows[3]["news2_resp_rate"] == "2"  # 20.5 -> 21
    assert rows[3]["news2_temperature"] == "1"  # 38.05 -> 38.1
    assert rows[0]["temperature"] == "37.0"  # raw value kept


def test_output_columns_follow_input_columns(tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text(f"{HEADER}\n", encoding="utf-8")
    stdout = io.StringIO()
    assert main(str(path), stdout, io.StringIO()) == 0
    assert stdout.getvalue() == ",".join([*HEADER.split(","), *OUTPUT_COLUMNS]) + "\n"
    assert OUTPUT_COLUMNS[4:] == (
        "news2_resp_rate",
        "news2_spo2",
        "news2_air_or_oxygen",
        "news2_systolic_bp",
        "news2_pulse",
        "news2_consciousness",
        "news2_temperature",
    )


def test_empty_cells_are_missing_and_make_a_partial_score(tmp_path: Path) -> None:
    status, rows, errors = run(tmp_path, f"{HEADER}\np1,,93,,,,135,,\n")
    assert (status, errors) == (0, "")
    (row,) = rows
    assert row["news2_total"] == "5"  # 2 (SpO2) + 3 (pulse) from what was measured
    assert row["news2_band"] == "medium"
    assert row["news2_complete"] == "false"
    assert row["news2_resp_rate"] == ""
    assert row["news2_air_or_oxygen"] == ""
    assert row["news2_pulse"] == "3"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("p2,16,abc,,false,120,70,A,37.0", "spo2"),
        ("p2,16,NaN,,false,120,70,A,37.0", "spo2"),
        ("p2,16,1e2,,false,120,70,A,37.0", "spo2"),
        ("p2,16,98,3,false,120,70,A,37.0", "spo2_scale"),
        ("p2,16,98,,maybe,120,70,A,37.0", "on_oxygen"),
        ("p2,16,98,,false,120,70,X,37.0", "consciousness"),
        ("p2,16,98,,false,120,70,A", "row: has 8 fields"),
        ("p2,16,98,,false,120,70,A,37.0,extra", "row: has 10 fields"),
    ],
)
def test_bad_row_is_reported_and_others_still_scored(tmp_path: Path, row: str, column: str) -> None:
    good = "p{},16,98,,false,120,70,A,37.0"
    status, rows, errors = run(tmp_path, f"{HEADER}\n{good.format(1)}\n{row}\n{good.format(3)}\n")
    assert status == 1
    assert errors.count("\n") == 1
    assert "data row 2 (line 3)" in errors
    assert column in errors
    assert [r["patient"] for r in rows] == ["p1", "p2", "p3"]
    assert [r["news2_total"] for r in rows] == ["0", "", "0"]
    assert all(rows[1][c] == "" for c in OUTPUT_COLUMNS if c in rows[1])


def test_header_missing_required_columns_exits_2(tmp_path: Path) -> None:
    status, rows, errors = run(tmp_path, "resp_rate,spo2\n16,98\n")
    assert status == 2
    assert rows == []
    assert "missing required column(s)" in errors
    assert all(c in errors for c in INPUT_COLUMNS if c not in {"resp_rate", "spo2"})


def test_header_clashing_with_output_columns_exits_2(tmp_path: Path) -> None:
    status, _, errors = run(tmp_path, f"{HEADER},news2_total\n")
    assert status == 2
    assert "news2_total" in errors


@pytest.mark.parametrize("text", ["", "\n"])
def test_empty_file_exits_2(tmp_path: Path, text: str) -> None:
    status, _, errors = run(tmp_path, text)
    assert status == 2
    assert errors


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    stderr = io.StringIO()
    assert main(str(tmp_path / "absent.csv"), io.StringIO(), stderr) == 2
    assert "cannot read CSV" in stderr.getvalue()


def test_binary_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    stderr = io.StringIO()
    assert main(str(path), io.StringIO(), stderr) == 2
    assert "cannot read CSV" in stderr.getvalue()


def test_excel_bom_and_padded_cells_are_accepted(tmp_path: Path) -> None:
    status, rows, errors = run(
        tmp_path, f"{HEADER}\np1, 16 , 98 ,, True ,120,70, A ,37.0\n", encoding="utf-8-sig"
    )
    assert (status, errors) == (0, "")
    assert rows[0]["news2_total"] == "2"
