"""The alerting package's exceptions: one small hierarchy, each naming the offending value.

``AlertingError`` subclasses ``ValueError`` so callers that map bad input to a 4xx (the hub)
can catch one type.
"""

from __future__ import annotations


class AlertingError(ValueError):
    """Base class for every error the alerting package raises on purpose."""


class AlertNotFound(AlertingError):
    """No alert with this id."""

    def __init__(self, alert_id: int) -> None:
        super().__init__(f"alert {alert_id} does not exist")
        self.alert_id = alert_id


class AlertTransitionError(AlertingError):
    """The requested lifecycle transition is not allowed from the alert's current state."""


class PolicyError(AlertingError):
    """An escalation policy file is invalid; the message names the file and the field."""


class CarePlanError(AlertingError):
    """A care-plan change is incomplete or inconsistent (e.g. Scale 2 without a reason)."""


class ReplayError(AlertingError):
    """A replay input (readings or ground truth) cannot be used."""
