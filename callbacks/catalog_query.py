"""Mongo-style queries on start documents: matched in Python, answered by SQL where the run
index can answer them exactly.

A query on ``uid``, ``time``, ``plan_name`` or ``scan_id`` with an operand of the column's type
(``$eq $ne $gt $gte $lt $lte $in $nin $exists``, and ``$and``/``$or`` of such) is turned into
SQL on the index's columns, exact for every run whose field is of its plain type (the index
marks the others ``odd``, and those are matched in Python). Anything else is matched in Python
on the start document, after an SQL pre-filter that only narrows (an equality on a top-level
field).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Where", "check_query", "match", "translate"]

_OPERATORS = frozenset(
    ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex"]
)
_COMBINERS = frozenset({"$and", "$or"})
_COLUMNS: dict[str, tuple[type, ...]] = {
    "uid": (str,),
    "plan_name": (str,),
    "time": (int, float),
    "scan_id": (int, float),
}
_SQL_OPS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def check_query(query: Any, where: str = "query") -> None:
    """Raise ``TypeError``/``ValueError`` naming what in ``query`` cannot be matched."""
    if not isinstance(query, dict):
        raise TypeError(f"A {where} is a dict of start-document fields, not {query!r}")
    for key, condition in query.items():
        if not isinstance(key, str):
            raise TypeError(f"Query keys are field names, not {key!r}")
        if key.startswith("$"):
            if key not in _COMBINERS:
                raise ValueError(f"Unknown query operator {key!r}")
            if not isinstance(condition, list | tuple):
                raise TypeError(f"{key} takes a list of queries, not {condition!r}")
            for sub in condition:
                check_query(sub, f"{key} entry")
        elif _is_operators(condition):
            for op, operand in condition.items():
                if op not in _OPERATORS:
                    raise ValueError(f"Unknown query operator {op!r} (on {key!r})")
                if op in ("$in", "$nin") and not isinstance(operand, list | tuple):
                    raise TypeError(f"{op} on {key!r} takes a list, not {operand!r}")


def _is_operators(condition: Any) -> bool:
    return (
        isinstance(condition, dict)
        and bool(condition)
        and all(isinstance(k, str) and k.startswith("$") for k in condition)
    )


def _typed(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


@dataclass
class Where:
    """SQL over the index's non-odd rows (``sql`` with ``params``), and what is left to match
    in Python (``residual``, empty when the SQL is exact)."""

    sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    residual: list[dict] = field(default_factory=list)

    @property
    def clause(self) -> str:
        return " AND ".join(f"({part})" for part in self.sql) if self.sql else "1"


def translate(queries: tuple[dict, ...]) -> Where:
    """The SQL (and the Python rest) for runs matching every query of ``queries``."""
    where = Where()
    for query in queries:
        for key, condition in query.items():
            _translate_term(key, condition, where)
    return where


def _translate_term(key: str, condition: Any, where: Where) -> None:
    if key == "$and":
        for sub in condition:
            for sub_key, sub_condition in sub.items():
                _translate_term(sub_key, sub_condition, where)
        return
    if key == "$or":
        branches = [translate((sub,)) for sub in condition]
        if branches and all(not b.residual for b in branches):
            where.sql.append(" OR ".join(f"({b.clause})" for b in branches))
            where.params.extend(p for b in branches for p in b.params)
            return
    if key in _COLUMNS:
        column = _column_sql(key, condition)
        if column is not None:
            where.sql.append(column[0])
            where.params.extend(column[1])
            return
    elif _plain_key(key) and _typed(condition, (str, int, float)):
        # a pre-filter only: the field equals it, or is a list (which may hold it)
        path = f'$."{key}"'
        where.sql.append("json_extract(start, ?) = ? OR json_type(start, ?) = 'array'")
        where.params.extend([path, condition, path])
    where.residual.append({key: condition})


def _plain_key(key: str) -> bool:
    """A top-level field name that quotes into a JSON path as it is."""
    return not key.startswith("$") and "." not in key and '"' not in key


def _column_sql(column: str, condition: Any) -> tuple[str, list] | None:
    kinds = _COLUMNS[column]
    if not _is_operators(condition):
        return (f"{column} = ?", [condition]) if _typed(condition, kinds) else None
    parts: list[str] = []
    params: list[Any] = []
    for op, operand in condition.items():
        if op in _SQL_OPS and _typed(operand, kinds):
            parts.append(f"{column} {_SQL_OPS[op]} ?")
            params.append(operand)
        elif op == "$ne" and _typed(operand, kinds):
            parts.append(f"({column} IS NULL OR {column} != ?)")
            params.append(operand)
        elif op in ("$in", "$nin") and all(_typed(item, kinds) for item in operand):
            marks = ",".join("?" * len(operand))
            if op == "$in":
                parts.append(f"{column} IN ({marks})" if operand else "0")
            else:
                parts.append(f"({column} IS NULL OR {column} NOT IN ({marks}))" if operand else "1")
            params.extend(operand)
        elif op == "$exists":
            parts.append(f"{column} IS {'NOT ' if operand else ''}NULL")
        else:
            return None
    return " AND ".join(parts), params


# ---- matching in Python -----------------------------------------------------------------
_MISSING = object()
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _lookup(doc: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _equal(value: Any, wanted: Any) -> bool:
    if value is _MISSING:
        return False
    if value == wanted:
        return True
    return isinstance(value, list) and not isinstance(wanted, list) and wanted in value


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _equal(value, operand)
    if op == "$ne":
        return not _equal(value, operand)
    if op == "$in":
        return any(_equal(value, item) for item in operand)
    if op == "$nin":
        return not any(_equal(value, item) for item in operand)
    if op == "$exists":
        return (value is not _MISSING) == bool(operand)
    if op == "$regex":
        return isinstance(value, str) and re.search(operand, value) is not None
    if op in _ORDER:
        if value is _MISSING:
            return False
        try:
            return bool(_ORDER[op](value, operand))
        except TypeError:
            return False
    raise ValueError(f"Unknown query operator {op!r}")


def match(doc: dict, query: dict) -> bool:
    """Whether a (start) document matches a mongo-style query; see :meth:`Catalog.search`."""
    for key, condition in query.items():
        if key == "$and":
            if not all(match(doc, q) for q in condition):
                return False
            continue
        if key == "$or":
            if not any(match(doc, q) for q in condition):
                return False
            continue
        value = _lookup(doc, key)
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            if not all(_compare(value, op, operand) for op, operand in condition.items()):
                return False
        elif not _equal(value, condition):
            return False
    return True
