"""NHS numbers: ten digits, the last a modulus-11 check digit (NHS Data Dictionary).

Weights 10..2 on the first nine digits; check = 11 − (sum mod 11); 11 → 0; 10 → invalid.
"""

from __future__ import annotations

from ward.domain.errors import InvalidNhsNumber


def _check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits, or None when none exists (check 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def normalise(value: str) -> str:
    """Strip spaces and dashes ("943 476 5919" → "9434765919") and validate."""
    digits = value.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise InvalidNhsNumber(value, "must be 10 digits")
    check = _check_digit(digits[:9])
    if check is None:
        raise InvalidNhsNumber(value, "no valid check digit exists for these nine digits")
    if check != int(digits[9]):
        raise InvalidNhsNumber(value, f"check digit should be {check}, not {digits[9]}")
    return digits


def is_valid(value: str) -> bool:
    try:
        normalise(value)
    except InvalidNhsNumber:
        return False
    return True


def with_check_digit(first_nine: str) -> str | None:
    """Complete nine digits to a valid NHS number, or None when none exists (check 10)."""
    check = _check_digit(first_nine)
    return None if check is None else first_nine + str(check)


def display(value: str) -> str:
    """The NHS's 3-3-4 display form: "943 476 5919"."""
    digits = normalise(value)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
