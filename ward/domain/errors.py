"""The domain's exception hierarchy: every error names the offending value."""


class DomainError(ValueError):
    """Base of every validation error raised by `ward.domain`."""


class UnknownVitalCode(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown vital code {code!r}")
        self.code = code


class UnknownUnit(DomainError):
    def __init__(self, code: str, unit: str, accepted: tuple[str, ...]) -> None:
        super().__init__(
            f"unit {unit!r} is not accepted for {code!r} (accepted: {', '.join(accepted)})"
        )
        self.code = code
        self.unit = unit


class ImplausibleValue(DomainError):
    def __init__(self, code: str, value: float, low: float, high: float, unit: str) -> None:
        super().__init__(
            f"{code} value {value:g} {unit} is outside the plausible range {low:g}–{high:g} {unit}"
        )
        self.code = code
        self.value = value


class UnknownLabel(DomainError):
    """A categorical value (ACVPU letter, pump state) that is not one of its labels."""

    def __init__(self, code: str, label: str, labels: tuple[str, ...]) -> None:
        super().__init__(f"{label!r} is not a value of {code} (one of {', '.join(labels)})")
        self.code = code
        self.label = label


class WrongValueType(DomainError):
    """A label (string) sent for a numeric code."""

    def __init__(self, code: str, value: str) -> None:
        super().__init__(f"{code} takes a number, got the string {value!r}")
        self.code = code
        self.value = value


class InvalidNhsNumber(DomainError):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid NHS number {value!r}: {reason}")
        self.value = value


class InvalidTransition(DomainError):
    """An admission or device change that the current state does not allow."""
