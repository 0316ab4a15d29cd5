"""The coordinator queue: submitted cases, read with the ORM (not a hot path)."""

from __future__ import annotations

import builtins

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from storage.models import Case, Document


class CaseQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, status: str | None = None) -> builtins.list[Case]:
        with Session(self.engine) as session:
            query = select(Case).order_by(col(Case.submitted_at))
            if status:
                query = query.where(Case.status == status)
            return list(session.exec(query).all())

    def by_reference(self, reference: str) -> Case | None:
        with Session(self.engine) as session:
            return session.exec(select(Case).where(Case.reference == reference.upper())).first()

    def documents(self, case_id: str) -> builtins.list[Document]:
        with Session(self.engine) as session:
            query = select(Document).where(Document.case_id == case_id).order_by(col(Document.id))
            return list(session.exec(query).all())
