"""virtualward: a Hospital-at-Home platform.

`ward` is both floor and roof: `ward.domain` and `ward.db` are what every other package stands
on; `ward.hub` and `ward.cli` sit on top of everything. The floor never imports the roof.
"""

__version__ = "0.1.0"
