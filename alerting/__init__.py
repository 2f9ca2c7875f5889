"""Alerting core: pure clinical decisions (NEWS2 scoring, alert rules) over plain data.

Nothing in this package may do I/O, read a clock, or log; adapters around it do that.
"""
