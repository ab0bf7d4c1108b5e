"""Keyset (seek) pagination: page 100,000 costs what page 1 costs.

A page is ordered by the sort column (if any) and then by the row identity
(primary key, rowid, ctid or a NOT NULL unique key), all in one direction, so
the order is total and an index on the sort column serves it. The next page
starts after the last row's key values: ``(sort, key) > (v, k)`` as a row-value
comparison every engine can answer from the index.

NULLs sort where the engine puts them natively (PostgreSQL: above every value;
SQLite and MySQL: below), so the ORDER BY still matches the index, and the
seek condition knows which side of the values they are on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, tuple_

from bastion.explorer.values import bound

NULLS_ABOVE_VALUES = {"postgresql": True, "sqlite": False, "mysql": False}


def order_by(columns: Sequence[ColumnElement[Any]], descending: bool) -> list[ColumnElement[Any]]:
    return [c.desc() if descending else c.asc() for c in columns]


def _after(columns: Sequence[ColumnElement[Any]], values: Sequence[Any], descending: bool,
           dialect: str) -> ColumnElement[bool]:
    params = [bound(v, dialect) for v in values]
    if len(columns) == 1:
        return columns[0] < params[0] if descending else columns[0] > params[0]
    left, right = tuple_(*columns), tuple_(*params)
    return left < right if descending else left > right


def seek_after(sort: ColumnElement[Any] | None, sort_nullable: bool, key: Sequence[ColumnElement[Any]],
               values: Sequence[Any], descending: bool, dialect: str) -> ColumnElement[bool]:
    """Rows that come after the row whose (sort, key) values are ``values`` in this scan order.

    ``values`` holds the sort value first when ``sort`` is given, then the key values.
    The key columns are never NULL; the sort column may be (``sort_nullable``).
    """
    if sort is None:
        return _after(key, values, descending, dialect)
    sort_value, key_values = values[0], values[1:]
    nulls_after = NULLS_ABOVE_VALUES[dialect] != descending  # do NULLs come after the values in this scan?
    if sort_value is not None:
        condition = _after([sort, *key], values, descending, dialect)
        return or_(condition, sort.is_(None)) if sort_nullable and nulls_after else condition
    within_nulls = and_(sort.is_(None), _after(key, key_values, descending, dialect))
    return within_nulls if nulls_after else or_(within_nulls, sort.is_not(None))
