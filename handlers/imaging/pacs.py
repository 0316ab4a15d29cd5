"""Pushes each submitted case's checked studies to Orthanc: the original for coordinators and
a de-identified copy for specialists (records/deidentify.py), decrypted in memory only.

The work is found in the tables, not queued by the ingest: every checked DICOM file of a
submitted case without a pacs_instance row is new. A push that fails (Orthanc down) is tried
again with a growing pause kept in the study's row, so it survives restarts; the case goes on
meanwhile and coordinators read "viewer not ready yet"."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from conversations.case_status import CaseStatus
from storage.database import run_once
from storage.files import FileStore
from storage.orthanc import OrthancClient, OrthancRefused, OrthancUnavailable
from storage.pacs import PacsTables, StudyRow

if TYPE_CHECKING:  # pydicom and dicognito load at the first push, not at start
    from records.deidentify import Deidentifier

log = logging.getLogger(__name__)

# Orthanc takes instances on several HTTP threads; a few in flight hide each round trip.
PARALLEL_STORES = 4
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … at most an hour: Orthanc back soon is used soon, a long outage
    costs one request an hour per study."""
    delay: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(delay, LONGEST_RETRY)


@dataclass(frozen=True)
class _Stored:
    file_id: str
    original: str
    deidentified: str
    deidentified_uid: str
    burned_in: bool


class PacsPush:
    def __init__(
        self,
        tables: PacsTables,
        orthanc: OrthancClient,
        files: FileStore,
        clock: Callable[[], datetime],
        keep_dates: bool = False,
    ) -> None:
        self.tables = tables
        self.orthanc = orthanc
        self.files = files
        self.clock = clock
        self.keep_dates = keep_dates
        self._running = threading.Lock()

    def run_pending(self) -> int:
        """Find new checked files, push every study that is due. Returns studies pushed.
        One thread of one worker at a time (several workers would push the same study)."""
        if not self._running.acquire(blocking=False):
            return 0
        try:
            with run_once(self.tables.engine, "pacs-push") as mine:
                if not mine:
                    return 0
                # Consent withdrawn: nothing of the case stays where specialists could see it.
                withdrawn = self.tables.in_status(CaseStatus.WITHDRAWN)
                if withdrawn:
                    self.erase(withdrawn)
                self._discover()
                return sum(self._push(study) for study in self.tables.due(self.clock()))
        finally:
            self._running.release()

    def _discover(self) -> None:
        while found := self.tables.new_files(withdrawn=CaseStatus.WITHDRAWN):
            pairs = []
            for file in found:
                study_uid = str(json.loads(file.details_json).get("study_uid") or "")
                # An instance without a study UID cannot be placed in any viewer's study.
                pairs.append((file, study_uid or "unknown"))
            self.tables.add_files(pairs, self.clock())

    def _push(self, study: StudyRow) -> bool:
        pending = self.tables.unpushed(study.id)
        seed = self.tables.seed_for_case(study.case_id, self.clock())
        local = threading.local()

        from records.deidentify import Deidentifier

        def store(item: tuple[str, str]) -> _Stored | None:
            if not hasattr(local, "deidentifier"):
                local.deidentifier = Deidentifier(seed, self.keep_dates)
            return self._store_one(item[0], item[1], local.deidentifier)

        stored: list[_Stored] = []
        failure: BaseException | None = None
        with ThreadPoolExecutor(PARALLEL_STORES) as pool:
            for future in [pool.submit(store, item) for item in pending]:
                try:
                    result = future.result()
                except OrthancUnavailable as error:
                    failure = error
                    continue
                if result is not None:
                    stored.append(result)
        refused = len(pending) - len(stored) if failure is None else 0
        first = stored[0] if stored else None
        kept = self.tables.pushed(
            study.id,
            [item.file_id for item in stored] + ([] if failure else [p[0] for p in pending]),
            original=first.original if first else "",
            deidentified=first.deidentified if first else "",
            deidentified_uid=first.deidentified_uid if first else "",
            burned_in=any(item.burned_in for item in stored),
            now=self.clock(),
            complete=failure is None,
        )
        if not kept and first is not None:
            # Erased while it was being pushed: nothing of it may stay in Orthanc.
            self._remove({first.original, first.deidentified})
            return False
        if refused:
            log.warning("Orthanc refused %d instances of study row %d", refused, study.id)
        if failure is not None:
            attempts = study.attempts + 1
            self.tables.failed(study.id, attempts, self.clock() + retry_delay(attempts))
            log.warning("Orthanc push of study row %d failed (%s)", study.id, failure)
            return False
        return True

    def _store_one(self, file_id: str, sha256: str, deidentifier: Deidentifier) -> _Stored | None:
        import pydicom

        from records.deidentify import may_show_burned_in_text

        # Decrypted into memory, never onto disk: one instance at a time per thread.
        with self.files.open(sha256) as stream:
            raw = stream.read()
        try:
            original = self.orthanc.store(raw)
            dataset = pydicom.dcmread(io.BytesIO(raw))
            burned_in = may_show_burned_in_text(dataset)
            deidentifier.apply(dataset)
            out = io.BytesIO()
            dataset.save_as(out)
            copy = self.orthanc.store(out.getvalue())
        except OrthancRefused:
            return None
        return _Stored(
            file_id, original.study, copy.study, str(dataset.StudyInstanceUID), burned_in
        )

    def erase(self, case_ids: Sequence[str]) -> None:
        """Remove both copies of the cases' studies from Orthanc, then their rows. Raises
        OrthancUnavailable while Orthanc is down: the erasure is then tried again."""
        studies = self.tables.for_cases(case_ids)
        self._remove(
            {s.orthanc_original for s in studies} | {s.orthanc_deidentified for s in studies}
        )
        self.tables.forget(case_ids)

    def _remove(self, orthanc_ids: set[str]) -> None:
        for orthanc_id in sorted(orthanc_ids - {""}):
            self.orthanc.delete_study(orthanc_id)
