"""NHS numbers: modulus-11 check digit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ward.domain import nhs_number
from ward.domain.errors import InvalidNhsNumber


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "943-476-5919", "4010232137"])
def test_valid_numbers(value: str) -> None:
    assert nhs_number.is_valid(value)
    assert len(nhs_number.normalise(value)) == 10


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9434765918", "check digit should be 9"),
        ("943476591", "10 digits"),
        ("94347659190", "10 digits"),
        ("94347659a9", "10 digits"),
        ("", "10 digits"),
        ("１２３４５６７８９０", "10 digits"),  # full-width digits are not ASCII
    ],
)
def test_invalid_numbers_name_the_value_and_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidNhsNumber) as info:
        nhs_number.normalise(value)
    assert reason in str(info.value)
    assert repr(value) in str(info.value)


def test_check_digit_ten_is_never_valid() -> None:
    # 1000000010: weights give a remainder of 1 → check 10, which no number may carry.
    first_nine = "100000001"
    assert nhs_number.with_check_digit(first_nine) is None
    for last in "0123456789":
        assert not nhs_number.is_valid(first_nine + last)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_completed_numbers_validate(first_nine: str) -> None:
    full = nhs_number.with_check_digit(first_nine)
    if full is not None:
        assert nhs_number.is_valid(full)
        wrong = full[:9] + str((int(full[9]) + 1) % 10)
        assert not nhs_number.is_valid(wrong)


def test_display_form() -> None:
    assert nhs_number.display("9434765919") == "943 476 5919"
