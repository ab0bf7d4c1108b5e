"""EXPLAIN for console statements, shown as a tree: the engine's plan, never the statement's effects.

The statements pass the same checks as a run (the plan reveals row estimates
and index names), and EXPLAIN runs in a read-only transaction (MySQL: one never
committed) under the same guards. Plain EXPLAIN does not execute the statement on any engine; ANALYZE is
never added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from sqlalchemy import Connection as SAConnection
from sqlalchemy.exc import DBAPIError

from bastion.console.analysis import Kind, Statement
from bastion.console.guards import guarded_transaction
from bastion.console.runner import Plan, Problem, console_connection, sqlite_policy, statement_problem

PREFIX = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN (FORMAT JSON) ", "mysql": "EXPLAIN FORMAT=JSON "}
EXPLAINABLE = frozenset({Kind.READ, Kind.WRITE})
# PostgreSQL plan keys shown on a node's line; the rest go to its details.
PG_HEADLINE = ("Node Type", "Relation Name", "Alias", "Index Name")


@dataclass
class PlanNode:
    label: str
    details: list[tuple[str, str]] = field(default_factory=list)
    children: list[PlanNode] = field(default_factory=list)


@dataclass
class Explained:
    statement: Statement
    nodes: list[PlanNode] = field(default_factory=list)
    note: str = ""


def explain(plan: Plan) -> tuple[list[Explained], Problem | None]:
    """The plan of every statement of an allowed ``plan`` (statements EXPLAIN cannot take get a note)."""
    if plan.problem is not None:
        return [], plan.problem
    explained: list[Explained] = []
    with console_connection(plan.connection) as conn:
        # MySQL refuses even EXPLAIN of a data change in a READ ONLY transaction. The user may run that change
        # itself (it passed the checks), and the transaction is never committed.
        read_only = plan.read_only or conn.dialect.name != "mysql"
        try:
            with guarded_transaction(conn, read_only=read_only, timeout=settings.CONSOLE_TIMEOUT,
                                     sqlite_policy=sqlite_policy(conn, plan.grants)):
                for statement in plan.statements:
                    explained.append(_explain_one(conn, statement))
        except DBAPIError as exc:
            return explained, statement_problem(plan, exc, len(explained) + 1, shifted=True)
    return explained, None


def _explain_one(conn: SAConnection, statement: Statement) -> Explained:
    if statement.kind not in EXPLAINABLE:
        return Explained(statement, note="Only queries and data changes have a plan.")
    dialect = conn.dialect.name
    rows = conn.exec_driver_sql(PREFIX[dialect] + statement.text).all()
    if dialect == "sqlite":
        return Explained(statement, _sqlite_tree(rows))
    document = rows[0][0]
    data = json.loads(document) if isinstance(document, str) else document
    if dialect == "postgresql":
        return Explained(statement, [_pg_node(item["Plan"]) for item in data])
    return Explained(statement, [_generic_node("plan", data)])


def _sqlite_tree(rows: list[Any]) -> list[PlanNode]:
    """EXPLAIN QUERY PLAN rows are (id, parent, unused, detail); parent 0 is the top."""
    nodes: dict[int, PlanNode] = {}
    roots: list[PlanNode] = []
    for node_id, parent, _unused, detail in rows:
        node = PlanNode(str(detail))
        nodes[node_id] = node
        (nodes[parent].children if parent in nodes else roots).append(node)
    return roots


def _pg_node(data: dict[str, Any]) -> PlanNode:
    headline = [str(data[k]) for k in PG_HEADLINE if k in data]
    label = headline[0] + (f" on {' '.join(headline[1:])}" if len(headline) > 1 else "")
    details = [(k, _text(v)) for k, v in data.items() if k not in PG_HEADLINE and k != "Plans"]
    return PlanNode(label, details, [_pg_node(child) for child in data.get("Plans", [])])


def _generic_node(key: str, value: Any) -> PlanNode:
    """MySQL/MariaDB JSON plans: objects and lists become branches, scalars a node's details."""
    node = PlanNode(key)
    items = value.items() if isinstance(value, dict) else ((f"{key} {i}", v) for i, v in enumerate(value, 1))
    for name, item in items:
        if isinstance(item, dict | list):
            node.children.append(_generic_node(str(name), item))
        else:
            node.details.append((str(name), _text(item)))
    return node


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
