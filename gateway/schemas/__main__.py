"""`python -m gateway.schemas`: regenerate the shipped JSON Schema files."""

from gateway.schemas import write

write()
