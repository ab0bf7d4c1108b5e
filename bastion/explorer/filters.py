"""Filters and search from the URL, turned into SQLAlchemy conditions with bound values (T01).

A filter is three parallel URL parameters, repeated: ``fc`` (column), ``fo``
(operator), ``fv`` (value), so any column name or value survives the URL and a
filtered view can be bookmarked. Columns must be visible in clear to the user:
a hidden column is reported exactly like a column that does not exist, and a
masked one is refused, since comparing against it would reveal it bit by bit (T31).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, TableClause, cast, false, or_

from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView
from bastion.explorer.schema import ColumnInfo, TableInfo
from bastion.explorer.values import InvalidValue, bound, parse

MAX_FILTERS = 20
MAX_IN_VALUES = 1000
MAX_VALUE_LENGTH = 10_000


@dataclass(frozen=True)
class Operator:
    label: str
    needs_value: bool = True
    comparison: bool = False  # =, <, ... : typed values, not for JSON or binary columns
    pattern: bool = False  # LIKE-based: not for binary columns


OPERATORS: dict[str, Operator] = {
    "eq": Operator("=", comparison=True),
    "ne": Operator("≠", comparison=True),
    "lt": Operator("<", comparison=True),
    "le": Operator("≤", comparison=True),
    "gt": Operator(">", comparison=True),
    "ge": Operator("≥", comparison=True),
    "contains": Operator("contains", pattern=True),
    "startswith": Operator("starts with", pattern=True),
    "in": Operator("in list", comparison=True),
    "null": Operator("is null", needs_value=False),
    "notnull": Operator("is not null", needs_value=False),
}
_COMPARE = {
    "eq": lambda c, v: c == v, "ne": lambda c, v: c != v, "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v, "gt": lambda c, v: c > v, "ge": lambda c, v: c >= v,
}


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str = ""

    @property
    def label(self) -> str:
        operator = OPERATORS.get(self.op)
        return f"{self.column} {operator.label if operator else self.op} {self.value}".rstrip()


def read_filters(params: Mapping[str, Any]) -> list[Filter]:
    """The filters in a QueryDict (``fc``/``fo``/``fv`` repeated, in order), blank rows dropped."""
    columns, ops, values = (params.getlist(name) for name in ("fc", "fo", "fv"))
    found = []
    for index, name in enumerate(columns[:MAX_FILTERS]):
        op = ops[index] if index < len(ops) else "eq"
        value = values[index] if index < len(values) else ""
        if name:
            found.append(Filter(name, op, value[:MAX_VALUE_LENGTH]))
    return found


class FilterError(ValueError):
    """A filter or the search cannot be applied; the message is safe to show."""


def usable_column(info: TableInfo, views: Mapping[str, ColumnView], name: str, purpose: str) -> ColumnInfo:
    """The column ``name`` if the user may use it to ``purpose`` (filter, sort); FilterError otherwise."""
    column = info.column(name)
    view = views.get(name)
    if column is None or view is None or view.mode == ColumnMode.HIDDEN:
        raise FilterError(f"There is no column named {name!r}.")
    if view.mode != ColumnMode.VISIBLE:
        raise FilterError(f"{name} is masked for you: it cannot be used to {purpose}.")
    return column


def _in_values(text: str, column: ColumnInfo, dialect: str) -> list[Any]:
    try:
        items = next(csv.reader([text], skipinitialspace=True), [])
    except csv.Error:
        raise InvalidValue("Separate the values with commas; put a value containing a comma in double quotes.") \
            from None
    if not items:
        raise InvalidValue("Give at least one value, separated by commas.")
    if len(items) > MAX_IN_VALUES:
        raise InvalidValue(f"At most {MAX_IN_VALUES} values.")
    return [bound(parse(item, column), dialect) for item in items]


def _condition(info: TableInfo, sa_table: TableClause, column: ColumnInfo, flt: Filter) -> ColumnElement[bool]:
    operator = OPERATORS.get(flt.op)
    if operator is None:
        raise FilterError(f"Unknown filter operator {flt.op!r}.")
    target = sa_table.c[column.name]
    if not operator.needs_value:
        return target.is_(None) if flt.op == "null" else target.is_not(None)
    if column.kind == "binary" or (operator.comparison and column.kind == "json"):
        raise FilterError(f"{column.name}: only “contains”, “starts with”, “is null” and “is not null” work on "
                          f"this column." if column.kind == "json" else
                          f"{column.name}: binary values can only be filtered with “is null” / “is not null”.")
    try:
        if operator.pattern:
            text = as_text(info, column, target)
            if flt.op == "contains":
                return text.icontains(flt.value, autoescape=True)
            return text.istartswith(flt.value, autoescape=True)
        if flt.op == "in":
            return target.in_(_in_values(flt.value, column, info.dialect))
        return _COMPARE[flt.op](target, bound(parse(flt.value, column), info.dialect))
    except InvalidValue as exc:
        raise FilterError(f"Filter on {column.name}: {exc}") from None


def filter_conditions(info: TableInfo, sa_table: TableClause, views: Mapping[str, ColumnView],
                      filters: Sequence[Filter]) -> tuple[list[ColumnElement[bool]], list[str]]:
    """Conditions for the filters that can be applied, and a message for each that cannot."""
    conditions, errors = [], []
    for flt in filters:
        try:
            column = usable_column(info, views, flt.column, "filter")
            conditions.append(_condition(info, sa_table, column, flt))
        except FilterError as exc:
            errors.append(str(exc))
    return conditions, errors


def search_condition(info: TableInfo, sa_table: TableClause, views: Mapping[str, ColumnView],
                     term: str) -> ColumnElement[bool]:
    """Rows where any text column the user sees in clear contains ``term`` (LIKE, wildcards escaped)."""
    columns = [c for c in info.columns if c.is_texty and views.get(c.name) is not None
               and views[c.name].mode == ColumnMode.VISIBLE]
    if not columns:
        raise FilterError("This table has no text column you can search.")
    term = term[:MAX_VALUE_LENGTH]
    return or_(false(), *(as_text(info, c, sa_table.c[c.name]).icontains(term, autoescape=True) for c in columns))


def as_text(info: TableInfo, column: ColumnInfo, target: Any) -> Any:
    """The column as text for LIKE. PostgreSQL has no LIKE on enum, inet, arrays... so it always casts
    there; elsewhere text columns are used as they are (an index can then serve "starts with")."""
    if column.kind == "text" and info.dialect != "postgresql":
        return target
    return cast(target, String)
