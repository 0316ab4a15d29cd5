"""The rows that follow each case's studies into Orthanc (storage/models.py PacsStudy,
PacsInstance, PacsKey): plain table access. What a push does lives in handlers/imaging/."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, delete, insert, or_, select, update

from storage.database import reader
from storage.models import Case, Document, PacsInstance, PacsKey, PacsStudy

_case = Case.__table__  # type: ignore[attr-defined]
_document = Document.__table__  # type: ignore[attr-defined]
_study = PacsStudy.__table__  # type: ignore[attr-defined]
_instance = PacsInstance.__table__  # type: ignore[attr-defined]
_key = PacsKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewFile:
    """A checked DICOM file of a submitted case that Orthanc has not been given yet."""

    file_id: str
    case_id: str
    sha256: str
    details_json: str


@dataclass(frozen=True)
class StudyRow:
    id: int
    case_id: str
    study_uid: str
    orthanc_original: str
    orthanc_deidentified: str
    deidentified_uid: str
    burned_in: bool
    pushed_at: datetime | None
    attempts: int
    next_try_at: datetime | None


_STUDY_COLUMNS = tuple(_study.c[name] for name in StudyRow.__dataclass_fields__)


class PacsTables:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)

    def new_files(self, withdrawn: str, limit: int = 1000) -> list[NewFile]:
        """Checked DICOM files of submitted cases with no instance row yet, but for cases in
        the `withdrawn` status (its spelling is conversations/case_status.py's)."""
        query = (
            select(_document.c.file_id, _document.c.case_id, _document.c.sha256)
            .add_columns(_document.c.details_json)
            .join(_case, _case.c.id == _document.c.case_id)
            .outerjoin(_instance, _instance.c.file_id == _document.c.file_id)
            .where(
                _document.c.kind == "dicom",
                _document.c.problem == "",
                _document.c.details_json != "",
                _instance.c.file_id.is_(None),
                _case.c.status != withdrawn,
            )
            .order_by(_document.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [NewFile(*row) for row in conn.execute(query).all()]

    def add_files(self, files: Sequence[tuple[NewFile, str]], now: datetime) -> None:
        """Record files with their study UIDs; a study that gains files is pushed again."""
        with self.engine.begin() as conn:
            for file, study_uid in files:
                study_id = conn.execute(
                    select(_study.c.id).where(
                        _study.c.case_id == file.case_id, _study.c.study_uid == study_uid
                    )
                ).scalar_one_or_none()
                if study_id is None:
                    created = conn.execute(
                        insert(_study).values(
                            case_id=file.case_id, study_uid=study_uid, created_at=now
                        )
                    )
                    study_id = created.inserted_primary_key[0]  # type: ignore[index]
                else:
                    conn.execute(
                        update(_study)
                        .where(_study.c.id == study_id)
                        .values(pushed_at=None, next_try_at=None, attempts=0)
                    )
                conn.execute(
                    insert(_instance).values(
                        file_id=file.file_id,
                        case_id=file.case_id,
                        study_id=study_id,
                        sha256=file.sha256,
                    )
                )

    def in_status(self, status: str) -> list[str]:
        """Cases in `status` whose studies are still recorded."""
        query = (
            select(_study.c.case_id)
            .join(_case, _case.c.id == _study.c.case_id)
            .where(_case.c.status == status)
            .distinct()
        )
        with self._reader.connect() as conn:
            return [row[0] for row in conn.execute(query).all()]

    def due(self, now: datetime, limit: int = 20) -> list[StudyRow]:
        query = (
            select(*_STUDY_COLUMNS)
            .where(
                _study.c.pushed_at.is_(None),
                or_(_study.c.next_try_at.is_(None), _study.c.next_try_at <= now),
            )
            .order_by(_study.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [StudyRow(*row) for row in conn.execute(query).all()]

    def for_cases(self, case_ids: Sequence[str]) -> list[StudyRow]:
        query = select(*_STUDY_COLUMNS).where(_study.c.case_id.in_(list(case_ids)))
        with self._reader.connect() as conn:
            return [StudyRow(*row) for row in conn.execute(query.order_by(_study.c.id)).all()]

    def study(self, study_id: int) -> StudyRow | None:
        query = select(*_STUDY_COLUMNS).where(_study.c.id == study_id)
        with self._reader.connect() as conn:
            row = conn.execute(query).first()
        return StudyRow(*row) if row is not None else None

    def reference_of(self, case_id: str) -> str:
        query = select(_case.c.reference).where(_case.c.id == case_id)
        with self._reader.connect() as conn:
            return str(conn.execute(query).scalar_one_or_none() or "")

    def unpushed(self, study_id: int) -> list[tuple[str, str]]:
        """(file id, sha256) of the study's instances Orthanc does not hold yet."""
        query = select(_instance.c.file_id, _instance.c.sha256).where(
            _instance.c.study_id == study_id, _instance.c.pushed_at.is_(None)
        )
        with self._reader.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(query.order_by(_instance.c.file_id))]

    def seed_for_case(self, case_id: str, now: datetime) -> str:
        """The patient's de-identification seed, made on first use."""
        with self.engine.begin() as conn:
            owner = conn.execute(
                select(_case.c.channel, _case.c.user_key).where(_case.c.id == case_id)
            ).one()
            where = and_(_key.c.channel == owner.channel, _key.c.user_key == owner.user_key)
            seed = conn.execute(select(_key.c.seed).where(where)).scalar_one_or_none()
            if seed is None:
                seed = secrets.token_hex(32)
                conn.execute(
                    insert(_key).values(
                        channel=owner.channel, user_key=owner.user_key, seed=seed, created_at=now
                    )
                )
            return str(seed)

    def pushed(
        self,
        study_id: int,
        file_ids: Sequence[str],
        *,
        original: str,
        deidentified: str,
        deidentified_uid: str,
        burned_in: bool,
        now: datetime,
        complete: bool,
    ) -> bool:
        """Record instances Orthanc now holds. False when the study's row is gone (erased
        while it was being pushed): the caller removes what it just stored."""
        values: dict[str, object] = {"attempts": 0, "next_try_at": None}
        if original:
            values.update(orthanc_original=original, orthanc_deidentified=deidentified)
            values.update(deidentified_uid=deidentified_uid)
        if burned_in:
            values["burned_in"] = True
        if complete:
            values["pushed_at"] = now
        with self.engine.begin() as conn:
            found = conn.execute(update(_study).where(_study.c.id == study_id).values(**values))
            if found.rowcount == 0:
                return False
            conn.execute(
                update(_instance)
                .where(_instance.c.file_id.in_(list(file_ids)))
                .values(pushed_at=now)
            )
        return True

    def failed(self, study_id: int, attempts: int, next_try_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_study)
                .where(_study.c.id == study_id)
                .values(attempts=attempts, next_try_at=next_try_at)
            )

    def forget(self, case_ids: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            for table in (_instance, _study):
                conn.execute(delete(table).where(table.c.case_id.in_(list(case_ids))))
