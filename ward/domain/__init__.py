"""The domain: vital signs, patients, admissions, devices and assignments.

Pure: no I/O, no clock, no logging. Everything here is a frozen dataclass, an enum or a
function over them, so the rest of the platform can rely on it without surprises.
"""
