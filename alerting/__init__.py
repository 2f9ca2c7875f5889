"""Alerting core: NEWS2, alert rules, the alert lifecycle and escalation.

Pure modules (no I/O, no clock, no logging): ``news2``, ``news2_vector``, ``candidates``,
``observations``, ``rules``, ``device_rules``, ``lifecycle``, ``policy``, ``escalation``,
``rota``. Thin adapters around them: ``store`` (SQL), ``runner`` (evaluate after a gateway
commit), ``actions`` and ``care_plan`` (hub writes), ``scheduler`` (timers, one leader),
``outbox`` and ``notify`` (delivery), ``cli`` (``vward alerting``).
"""
