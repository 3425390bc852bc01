"""One typed store owns all SQL: no module of portside outside ``control/store/`` speaks it.

Controllers, the proxy and the agent call the store's domain methods
(``store.listeners_with_load_balancers()``, ``store.save_health(...)``); only the store package
touches the connection. The scan is of the source: SQL in string literals (f-string parts too),
``.execute`` on a ``db``, ``executemany``/``executescript`` anywhere, the ``db`` of a ``store``,
and ``import sqlite3``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import portside

SRC = Path(portside.__file__).resolve().parent
STORE = SRC / "control" / "store"

SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|ALTER|DROP)\s+(TABLE|(UNIQUE\s+)?INDEX)\b|\bPRAGMA\s+\w+|\bBEGIN\s+IMMEDIATE\b",
    re.DOTALL,
)
ALWAYS_SQL_CALLS = {"executemany", "executescript"}


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, what) of every piece of SQL (or connection use) in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append((node.lineno, f"SQL in a string: {node.value[:60]!r}"))
        elif isinstance(node, ast.Attribute):
            receiver = node.value
            receiver_name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
            if node.attr in ALWAYS_SQL_CALLS:
                found.append((node.lineno, f".{node.attr}"))
            elif node.attr == "execute" and receiver_name == "db":
                found.append((node.lineno, "db.execute"))
            elif node.attr == "db" and receiver_name == "store":
                found.append((node.lineno, "store.db"))
        elif isinstance(node, ast.Import) and any(alias.name == "sqlite3" for alias in node.names):
            found.append((node.lineno, "import sqlite3"))
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            found.append((node.lineno, "from sqlite3 import"))
    return sorted(found)


def offenders(root: Path) -> list[str]:
    """Every piece of SQL in the modules under ``root`` outside its ``control/store/``."""
    store = root / "control" / "store"
    return [
        f"{path.relative_to(root)}:{line}: {what}"
        for path in sorted(root.rglob("*.py"))
        if store not in path.parents
        for line, what in sql_in(path.read_text())
    ]


def test_no_module_outside_the_store_speaks_sql() -> None:
    found = offenders(SRC)
    assert not found, "move these behind a typed method of the store (control/store/):\n" + "\n".join(found)


def test_the_store_package_is_where_the_sql_is() -> None:
    """The scan looks where SQL really is: it finds the store's own (else it could never fail)."""
    in_store = [what for path in STORE.rglob("*.py") for _, what in sql_in(path.read_text())]
    assert len(in_store) > 50
    assert any("db.execute" == what for what in in_store)
    assert any("import sqlite3" in what for what in in_store)


def test_the_scan_finds_each_kind_of_sql_a_controller_used_to_hold() -> None:
    # Taken from the controllers before the store owned their SQL.
    samples = {
        'rows = plane.store.db.execute("SELECT port, arn FROM elb_listeners").fetchall()': 3,
        'plane.store.db.execute(f"DELETE FROM aas_scaling_policies WHERE {where}", (region, *key))': 3,
        'x = select(plane, f"SELECT body FROM elb_target_groups {where}ORDER BY rowid", args)': 1,
        'sql = "INSERT OR REPLACE INTO lb_target_health VALUES (?, ?, ?, ?)"': 1,
        'sql = "UPDATE elb_listeners SET body=?, port=? WHERE arn=?"': 1,
        'self.db.execute(\n    "CREATE TABLE IF NOT EXISTS lb_target_health (group_arn TEXT NOT NULL)"\n)': 2,
        "conn.executemany(sql, rows)": 1,
        "handle = self.store.db": 1,
        "import sqlite3": 1,
    }
    for source, count in samples.items():
        assert len(sql_in(source)) == count, (source, sql_in(source))


def test_prose_and_http_methods_are_not_sql() -> None:
    for source in (
        '"""Local test/demo images, built ``FROM scratch`` without any registry."""',
        'IDEMPOTENT = frozenset({b"GET", b"PUT", b"DELETE"})',
        'message = "Select the target group to update from the list"',
        "rows = self.select(targets)",
    ):
        assert sql_in(source) == [], source
