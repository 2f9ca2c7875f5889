"""The JSON Schema files of the wire contract, generated from the pydantic models.

Shipped in the package so device makers can validate against them; a test proves the files
equal what `gateway.contract.json_schemas()` generates. Regenerate after a model change with
`python -m gateway.schemas`.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.contract import json_schemas

SCHEMA_DIR = Path(__file__).parent


def rendered() -> dict[str, str]:
    """File name → the exact text each schema file must hold."""
    return {
        f"{name}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }


def write(folder: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for file_name, text in rendered().items():
        path = folder / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
