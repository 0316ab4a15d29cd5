"""The files of each case, as recorded after they were stored and checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import reader
from storage.models import Document

_document = Document.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DocumentRow:
    file_id: str
    case_id: str
    item: str
    sha256: str
    size: int
    original_name: str
    stored_at: datetime
    kind: str = ""
    path: str = ""
    parent_file_id: str | None = None
    problem: str = ""
    details_json: str = ""


_COLUMNS = tuple(DocumentRow.__dataclass_fields__)


class DocumentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    def add(self, rows: Sequence[DocumentRow]) -> None:
        """Record files in one transaction; a retried job finds them there and changes nothing."""
        if not rows:
            return
        statement = self._dialect.insert(_document).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(statement, [asdict(row) for row in rows])

    def for_case(self, case_id: str) -> list[DocumentRow]:
        query = (
            select(*(_document.c[name] for name in _COLUMNS))
            .where(_document.c.case_id == case_id)
            .order_by(_document.c.id)
        )
        with self._reader.connect() as conn:
            return [DocumentRow(*row) for row in conn.execute(query).all()]

    def bytes_used(self, case_id: str) -> int:
        """What the case holds in the store, each distinct content counted once."""
        distinct = (
            select(_document.c.sha256, func.max(_document.c.size).label("size"))
            .where(_document.c.case_id == case_id)
            .group_by(_document.c.sha256)
            .subquery()
        )
        with self._reader.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.sum(distinct.c.size), 0))).scalar_one()
            )

    def names_by_sha(
        self, case_id: str, sha256s: Sequence[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """For several contents at once: sha256 -> (file id, name) of each file of the case
        that holds it (the files checked together ask once, not once each)."""
        found: dict[str, list[tuple[str, str]]] = {}
        wanted = sorted(set(sha256s))
        with self._reader.connect() as conn:
            # In slices: SQLite takes at most 32,766 bound parameters in one statement.
            for start in range(0, len(wanted), 5_000):
                query = (
                    select(_document.c.sha256, _document.c.file_id, _document.c.original_name)
                    .where(
                        _document.c.case_id == case_id,
                        _document.c.sha256.in_(wanted[start : start + 5_000]),
                    )
                    .order_by(_document.c.id)
                )
                for sha256, file_id, name in conn.execute(query).all():
                    found.setdefault(sha256, []).append((file_id, name))
        return found
