"""Typed access to a model's table, for tests that read or write rows directly."""

from __future__ import annotations

from sqlalchemy import Table
from sqlmodel import SQLModel


def table(model: type[SQLModel]) -> Table:
    """The model's table (SQLModel does not declare `__table__` to type checkers)."""
    return SQLModel.metadata.tables[str(model.__tablename__)]
