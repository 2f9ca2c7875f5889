"""No SQL in routers (STYLE.md, TEAM rules): the statements live in `ward.hub.queries` or a
domain module (`ward.hub.people`, `ward.hub.admitting`, …); a router calls functions.

The router sources are parsed (not imported) and every finding is named file:line: a string
constant that reads as SQL, a call of `.execute` / `.executemany` / `.copy` / `.cursor`, or
psycopg's `sql` composition. The one exception is the readiness probe's `SELECT 1`
(`health.readyz`): it asks the pool for a connection that answers, which is the probe's whole
job, not a query of the hub's data.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ward.hub.routers

ROUTERS = Path(ward.hub.routers.__file__).parent
# (file, function, finding) allowed on purpose; each says why in the module docstring.
ALLOWED = frozenset({("health.py", "readyz", "SQL 'SELECT 1'"),
                     ("health.py", "readyz", "call .execute()")})
# Upper-case SQL as the code base writes it: a statement's opening words, or a clause.
_SQL = re.compile(r"\b(SELECT\s|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
                  r"COPY\s+\w+|LOCK\s+TABLE\b|FOR\s+UPDATE\b|ORDER\s+BY\b|"
                  r"(FROM|JOIN)\s+\w+\s+(WHERE|JOIN|ON|AS|ORDER|GROUP|LIMIT)\b)")
_CALLS = frozenset({"execute", "executemany", "copy", "cursor"})


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def findings(source: str, filename: str) -> list[tuple[str, int, str, str]]:
    """(file, line, enclosing function, what) for every piece of SQL in `source`."""
    tree = ast.parse(source, filename)
    docs = _docstrings(tree)
    out: list[tuple[str, int, str, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docs and _SQL.search(node.value)):
            out.append((filename, node.lineno, func, f"SQL {node.value[:40]!r}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _CALLS:
                out.append((filename, node.lineno, func, f"call .{node.func.attr}()"))
            elif isinstance(node.func.value, ast.Name) and node.func.value.id == "sql":
                out.append((filename, node.lineno, func, f"psycopg sql.{node.func.attr}"))
        elif isinstance(node, ast.ImportFrom) and (
                node.module == "psycopg.sql"
                or (node.module == "psycopg" and any(a.name == "sql" for a in node.names))):
            out.append((filename, node.lineno, func, "imports psycopg.sql"))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, "<module>")
    return out


def test_routers_hold_no_sql() -> None:
    found = [f for path in sorted(ROUTERS.glob("*.py"))
             for f in findings(path.read_text(encoding="utf-8"), path.name)]
    left = [f"{file}:{line} ({func}): {what}" for file, line, func, what in found
            if (file, func, what) not in ALLOWED]
    assert not left, "SQL in routers; move it to ward.hub.queries:\n" + "\n".join(left)
    # The exception is still there and still the only one (else drop it from ALLOWED).
    assert {(f[0], f[2], f[3]) for f in found} == ALLOWED


@pytest.mark.parametrize(("source", "kinds"), [
    ('conn.execute("SELECT 1 FROM patients WHERE id = %s", (pid,))',
     ["call .execute()", "SQL"]),
    ('Q = "SELECT id, name FROM users "', ["SQL"]),
    ('Q = ("UPDATE hub_sessions SET revoked_at = %s "\n     "WHERE user_id = %s")', ["SQL"]),
    ('Q = "INSERT INTO handovers (at, by) VALUES (%s, %s)"', ["SQL"]),
    ('Q = "DELETE FROM tasks"', ["SQL"]),
    ('Q = f"count(*) FROM tasks WHERE {w}"', ["SQL"]),
    ('Q = "SELECT admitted_at FROM admissions FOR UPDATE"', ["SQL"]),
    ('with conn.cursor() as cur:\n    pass', ["call .cursor()"]),
    ('with cur.copy(stmt) as c:\n    pass', ["call .copy()"]),
    ('from psycopg import sql', ["imports psycopg.sql"]),
    ('q = sql.SQL(x).format(y)', ["psycopg sql.SQL"]),
])
def test_the_scan_finds_sql(source: str, kinds: list[str]) -> None:
    assert [f[3].split(" '")[0] for f in findings(source, "x.py")] == kinds


@pytest.mark.parametrize("source", [
    '"""Reads SELECT rows from the users table ORDER BY name (a docstring)."""',
    'msg = "choose how the stay ended"',
    'raise NotFound(f"no patient with id {patient_id}")',
    'detail = "the order of the queue: urgent first, then the oldest"',
    'queries.list_tasks(conn, status=status, limit=limit, offset=offset)',
])
def test_the_scan_leaves_plain_code_and_prose(source: str) -> None:
    assert findings(source, "x.py") == []
