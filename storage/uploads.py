"""Secure upload links, and files arriving through the upload page in resumable chunks.

A link carries a random token; only its sha256 is stored, so the database alone opens no
one's upload page. Chunks are appended to a spool file named by the upload's id only (the
patient's file name is data, never part of a path). A page that reloads or loses its connection
continues from the offset the server confirms.

The spool is encrypted as it arrives, with the file store's key: it is a run of sealed
records (storage/files.py, Sealer), each up to 1 MiB of the file, bound to the upload's id and
to the offset it starts at, so records cannot be moved, swapped or replayed between files.
Each record begins with its plaintext length, so the place where an offset starts is found
without decrypting anything. A spool is kept only while something will read it: a refused or
revoked upload's spool goes at once, and the sweeps remove any other leftover."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import os
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from storage.database import reader
from storage.files import CHUNK_SIZE, SEAL_OVERHEAD, CorruptFile, Sealer, out_of_space
from storage.jobs import MAX_ATTEMPTS
from storage.models import Job, Upload, UploadToken
from storage.private import open_private, private_dir

_token = UploadToken.__table__  # type: ignore[attr-defined]
_upload = Upload.__table__  # type: ignore[attr-defined]
_job = Job.__table__  # type: ignore[attr-defined]

TOKEN_BYTES = 32  # 256 bits from the OS's random source
# The FileRef source of a file that arrived through the upload page: "upload:<id>".
UPLOAD_SOURCE = "upload:"
MAX_NAME_CHARS = 255
MAX_PATH_CHARS = 1024
MAX_FINGERPRINT_CHARS = 2048
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_ID_SHAPE = re.compile(r"[0-9a-f]{32}")
_UPLOAD_REFERENCE = re.compile(r"upload:([0-9a-f]{32})")
LENGTH_BYTES = 4
# A record on disk: its plaintext length, then the sealed plaintext.
RECORD_OVERHEAD = LENGTH_BYTES + SEAL_OVERHEAD


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class UploadGrant:
    """What a valid link allows: uploads to one case, announced to one chat."""

    token_hash: str
    case_id: str
    channel: str
    user_key: str
    chat_key: str
    locale: str
    expires_at: datetime


def _grant(row: Any) -> UploadGrant:
    return UploadGrant(
        row.token_hash,
        row.case_id,
        row.channel,
        row.user_key,
        row.chat_key,
        row.locale,
        row.expires_at,
    )


class UploadTokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)

    def issue(
        self,
        *,
        case_id: str,
        channel: str,
        user_key: str,
        chat_key: str,
        locale: str,
        now: datetime,
        ttl: timedelta,
    ) -> str:
        """A new link token for the case; the raw token is returned once and never stored."""
        raw = secrets.token_urlsafe(TOKEN_BYTES)
        values = {
            "token_hash": hash_token(raw),
            "case_id": case_id,
            "channel": channel,
            "user_key": user_key,
            "chat_key": chat_key,
            "locale": locale,
            "created_at": now,
            "expires_at": now + ttl,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(_token).values(**values))
        return raw

    def resolve(self, raw: str, now: datetime) -> UploadGrant | None:
        """The grant behind a token; None when unknown, expired or revoked."""
        row = self._row(raw)
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        return _grant(row)

    def locale_of(self, raw: str) -> str | None:
        """The link's language even when it expired, so the "expired" page speaks it."""
        row = self._row(raw)
        return None if row is None else str(row.locale)

    def revoke_case(self, case_id: str, now: datetime) -> int:
        statement = (
            update(_token)
            .where(_token.c.case_id == case_id, _token.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount

    def _row(self, raw: str) -> Any:
        # Anything that cannot be a token is refused before it reaches the database.
        if not _TOKEN_SHAPE.fullmatch(raw):
            return None
        query = select(_token).where(_token.c.token_hash == hash_token(raw))
        with self._reader.connect() as conn:
            return conn.execute(query).first()


class UploadProblem(StrEnum):
    TOO_LARGE = "too_large"  # over the case's quota
    BAD_OFFSET = "bad_offset"
    UNKNOWN_UPLOAD = "unknown_upload"
    ALREADY_COMPLETE = "already_complete"
    BAD_REQUEST = "bad_request"
    NO_SPACE = "no_space"  # the disk is full: the chunk is dropped, to be sent again later
    EMPTY = "empty"  # a file of no bytes: nothing a specialist could read


class UploadRefused(Exception):
    """`offset` is what the server holds (BAD_OFFSET, ALREADY_COMPLETE): continue from there."""

    def __init__(self, problem: UploadProblem, offset: int | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.offset = offset


@dataclass(frozen=True)
class UploadState:
    id: str
    name: str
    relative_path: str
    size: int
    received: int
    completed: bool
    # The browser's own fingerprint (path, name, size, last modified): the page matches a
    # file chosen again after a reload with it.
    fingerprint: str = ""


_STATE_COLUMNS = (
    _upload.c.id,
    _upload.c.name,
    _upload.c.relative_path,
    _upload.c.size,
    _upload.c.received,
    _upload.c.completed_at.is_not(None),
    _upload.c.fingerprint,
)


def _state(row: Any) -> UploadState:
    return UploadState(*row)


def _upload_id(source: str) -> str:
    upload_id = source.removeprefix(UPLOAD_SOURCE)
    if not source.startswith(UPLOAD_SOURCE) or not _ID_SHAPE.fullmatch(upload_id):
        raise ValueError("not an upload source")
    return upload_id


def _well_described(name: str, relative_path: str, size: int, fingerprint: str) -> bool:
    """The name and path are only shown, never used as paths; still, refuse what no browser
    sends, so nothing downstream that unpacks folders meets `..` or an absolute path."""
    text = name + relative_path + fingerprint
    return (
        0 < len(name) <= MAX_NAME_CHARS
        and len(relative_path) <= MAX_PATH_CHARS
        and 0 < len(fingerprint) <= MAX_FINGERPRINT_CHARS
        and size >= 0
        and "\x00" not in text
        and not relative_path.startswith("/")
        and ".." not in relative_path.split("/")
    )


def _context(upload_id: str, offset: int) -> bytes:
    """What a record is bound to: this upload, at this offset."""
    return b"huizhen upload " + upload_id.encode() + offset.to_bytes(8, "big")


def _record_end(fd: int, received: int) -> int | None:
    """The spool position where the file's first `received` bytes end (records are walked by
    their lengths, nothing is decrypted); None when no record boundary falls there."""
    position = covered = 0
    while covered < received:
        head = os.pread(fd, LENGTH_BYTES, position)
        if len(head) < LENGTH_BYTES:
            return None
        covered += int.from_bytes(head, "big")
        position += RECORD_OVERHEAD + int.from_bytes(head, "big")
    return position if covered == received else None


@dataclass
class _OpenPart:
    """A spool file opened and locked for one chunk: what arrives is sealed in records of up
    to 1 MiB as it fills them, the rest when the chunk ends."""

    fd: int
    upload_id: str
    size: int
    start: int  # the file's offset where the chunk began
    position: int  # the file's offset after what arrived (sealed or not yet)
    sealer: Sealer
    spool_start: int  # where in the spool the chunk's records begin
    sealed: int = field(init=False)  # the file's offset sealed to disk so far
    spool_position: int = field(init=False)  # where the next record goes
    pending: bytearray = field(default_factory=bytearray)  # arrived, not yet sealed

    def __post_init__(self) -> None:
        self.sealed = self.start
        self.spool_position = self.spool_start

    def write(self, piece: bytes) -> None:
        self.pending += piece
        self.position += len(piece)
        while len(self.pending) >= CHUNK_SIZE:
            self._seal(bytes(self.pending[:CHUNK_SIZE]))
            del self.pending[:CHUNK_SIZE]

    def seal_rest(self) -> None:
        if self.pending:
            self._seal(bytes(self.pending))
            self.pending.clear()

    def drop_rest(self) -> None:
        """What could not be sealed is not kept: the page sends it again."""
        self.pending.clear()
        self.position = self.sealed

    def _seal(self, plain: bytes) -> None:
        record = len(plain).to_bytes(LENGTH_BYTES, "big") + self.sealer.seal(
            plain, _context(self.upload_id, self.sealed)
        )
        view = memoryview(record)
        at = self.spool_position
        while view:
            written = os.pwrite(self.fd, view, at)
            at += written
            view = view[written:]
        self.spool_position = at
        self.sealed += len(plain)

    def abandon(self) -> None:
        try:
            os.ftruncate(self.fd, self.spool_start)
        finally:
            os.close(self.fd)


class _SpoolReader(io.RawIOBase):
    """The plaintext of a completed upload, record by record; CorruptFile if a record was
    altered, moved or cut off, or the records do not add up to the file."""

    def __init__(self, spool: BinaryIO, sealer: Sealer, upload_id: str, size: int) -> None:
        self._spool = spool
        self._sealer = sealer
        self._upload_id = upload_id
        self._size = size
        self._offset = 0
        self._plain = memoryview(b"")  # the current record's plaintext not yet read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._plain and not self._next():
            return 0
        count = min(len(buffer), len(self._plain))
        buffer[:count] = self._plain[:count]
        self._plain = self._plain[count:]
        return count

    def _next(self) -> bool:
        head = self._spool.read(LENGTH_BYTES)
        if not head:
            if self._offset != self._size:
                raise CorruptFile("an upload's spool is shorter than the file")
            return False
        length = int.from_bytes(head, "big")
        if len(head) < LENGTH_BYTES or length > CHUNK_SIZE:
            raise CorruptFile("an upload's spool is damaged")
        sealed = self._spool.read(length + SEAL_OVERHEAD)
        if len(sealed) != length + SEAL_OVERHEAD:
            raise CorruptFile("an upload's spool is cut off")
        plain = self._sealer.unseal(sealed, _context(self._upload_id, self._offset))
        self._plain = memoryview(plain)
        self._offset += length
        if self._offset > self._size:
            raise CorruptFile("an upload's spool is longer than the file")
        return True

    def close(self) -> None:
        self._spool.close()
        super().close()


class UploadStore:
    def __init__(self, engine: Engine, spool_dir: Path, quota_bytes: int, sealer: Sealer) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.quota_bytes = quota_bytes
        # The file store's keys: the spool is encrypted as the store is.
        self.sealer = sealer
        self._reader = reader(engine)
        self._postgres = engine.dialect.name == "postgresql"
        private_dir(spool_dir)

    def spool_path(self, upload_id: str) -> Path:
        return self.spool_dir / f"{upload_id}.part"

    def begin(
        self,
        grant: UploadGrant,
        *,
        name: str,
        relative_path: str,
        size: int,
        fingerprint: str,
        now: datetime,
    ) -> UploadState:
        """A new upload, or the one already started (or finished) for the same file."""
        if not _well_described(name, relative_path, size, fingerprint):
            raise UploadRefused(UploadProblem.BAD_REQUEST)
        if size == 0:
            # Refused, not stored: empty files took no quota, so any number of them could be
            # begun, each a row, a file on disk and a line in the chat.
            raise UploadRefused(UploadProblem.EMPTY)
        same_file = select(*_STATE_COLUMNS).where(
            _upload.c.case_id == grant.case_id,
            _upload.c.fingerprint == fingerprint,
            _upload.c.relative_path == relative_path,
            _upload.c.size == size,
        )
        with self.engine.begin() as conn:
            self._lock_case(conn, grant.case_id)
            existing = conn.execute(same_file.limit(1)).first()
            if existing is not None:
                return _state(existing)
            used = conn.execute(
                select(func.coalesce(func.sum(_upload.c.size), 0)).where(
                    _upload.c.case_id == grant.case_id
                )
            ).scalar_one()
            if int(used) + size > self.quota_bytes:
                raise UploadRefused(UploadProblem.TOO_LARGE)
            upload_id = uuid.uuid4().hex
            conn.execute(
                insert(_upload).values(
                    id=upload_id,
                    token_hash=grant.token_hash,
                    case_id=grant.case_id,
                    name=name,
                    relative_path=relative_path,
                    size=size,
                    fingerprint=fingerprint,
                    received=0,
                    created_at=now,
                    completed_at=None,
                )
            )
        return UploadState(upload_id, name, relative_path, size, 0, False, fingerprint)

    async def append(
        self,
        upload_id: str,
        grant: UploadGrant,
        offset: int,
        chunks: AsyncIterable[bytes],
        now: datetime,
    ) -> UploadState:
        """Write `chunks` at `offset` (which must be what the server holds). Disk and database
        work runs in worker threads. When the connection breaks mid-chunk, the bytes that did
        arrive are kept (they are a correct prefix) and the page continues after them; a
        refused chunk (more bytes than the file's size) is cut off again entirely."""
        part = await asyncio.to_thread(self._open_part, upload_id, grant, offset)
        try:
            async for piece in chunks:
                if part.position + len(piece) > part.size:
                    raise UploadRefused(UploadProblem.BAD_REQUEST)
                await asyncio.to_thread(part.write, piece)
            await asyncio.to_thread(part.seal_rest)
        except UploadRefused:
            await asyncio.to_thread(part.abandon)
            raise
        except OSError as error:
            if not out_of_space(error):
                self._settle(part, now)
                raise
            # Cut back to where the chunk began: nothing half-written takes the space the disk
            # lacks, and the row (unchanged) tells the page where to go on from.
            await asyncio.to_thread(part.abandon)
            raise UploadRefused(UploadProblem.NO_SPACE, offset=part.start) from error
        except BaseException:
            # Settled here, not in a thread: a cancelled task must not wait on anything more.
            self._settle(part, now)
            raise
        return await asyncio.to_thread(self._settle, part, now)

    def uploads_of(self, case_id: str) -> list[UploadState]:
        query = (
            select(*_STATE_COLUMNS)
            .where(_upload.c.case_id == case_id)
            .order_by(_upload.c.created_at, _upload.c.id)
        )
        with self._reader.connect() as conn:
            return [_state(row) for row in conn.execute(query).all()]

    def unannounced(self, case_id: str) -> list[UploadState]:
        """Completed uploads of the case the chat has not been told about yet."""
        query = (
            select(*_STATE_COLUMNS)
            .where(
                _upload.c.case_id == case_id,
                _upload.c.completed_at.is_not(None),
                _upload.c.announced_at.is_(None),
            )
            .order_by(_upload.c.completed_at, _upload.c.id)
        )
        with self._reader.connect() as conn:
            return [_state(row) for row in conn.execute(query).all()]

    def mark_announced(self, ids: Sequence[str], now: datetime) -> None:
        if not ids:
            return
        statement = update(_upload).where(_upload.c.id.in_(list(ids))).values(announced_at=now)
        with self.engine.begin() as conn:
            conn.execute(statement)

    def sweep(
        self, now: datetime, older_than: timedelta
    ) -> list[tuple[UploadGrant, list[UploadState]]]:
        """Uploads completed at least `older_than` ago and never announced (the page was closed
        before it said "done"), grouped by the link they came through, so the runner can tell
        each chat. Expired links are included: the files did arrive. Revoked ones are not: the
        patient withdrew or asked for an erasure, and their spools are removed instead."""
        query = (
            select(*_STATE_COLUMNS, _token)
            .join(_token, _token.c.token_hash == _upload.c.token_hash)
            .where(
                _upload.c.completed_at.is_not(None),
                _upload.c.announced_at.is_(None),
                _upload.c.completed_at <= now - older_than,
                _token.c.revoked_at.is_(None),
            )
            .order_by(_upload.c.token_hash, _upload.c.completed_at, _upload.c.id)
        )
        groups: dict[str, tuple[UploadGrant, list[UploadState]]] = {}
        with self._reader.connect() as conn:
            for row in conn.execute(query).all():
                _, states = groups.setdefault(row.token_hash, (_grant(row), []))
                states.append(_state(row[: len(_STATE_COLUMNS)]))
        return list(groups.values())

    def remove_abandoned(self, now: datetime, older_than: timedelta) -> int:
        """Uploads never finished (the patient gave up, the link expired): their partial
        files are deleted, so nothing half-sent stays on disk."""
        stale = (_upload.c.completed_at.is_(None)) & (_upload.c.created_at <= now - older_than)
        with self.engine.begin() as conn:
            ids = [row[0] for row in conn.execute(select(_upload.c.id).where(stale)).all()]
            if ids:
                conn.execute(delete(_upload).where(_upload.c.id.in_(ids)))
        for upload_id in ids:
            self.spool_path(upload_id).unlink(missing_ok=True)
        return len(ids)

    def release_unclaimed(self, ids: Iterable[str]) -> int:
        """The spools of these uploads that no job will read (the chat turned the files away:
        a withdrawn patient, a case with all the files it may have, a step that takes none)
        are removed at once. Returns how many."""
        claimed = self._claimed()
        removed = 0
        for upload_id in ids:
            if upload_id not in claimed and _ID_SHAPE.fullmatch(upload_id):
                removed += self._remove_spool(upload_id)
        return removed

    def remove_leftovers(
        self, grace: timedelta, channel: str | None = None, user_key: str | None = None
    ) -> int:
        """Spools nothing will read any more: of uploads whose link was revoked (a withdrawal,
        an erasure; an unfinished one goes with its row), of announced uploads no job reads
        (stored, or turned away), and, unless one patient's are asked for, files no upload
        names, not written to for `grace` (a begin() under way keeps its file). Returns how
        many spools went."""
        query = select(
            _upload.c.id,
            _upload.c.completed_at.is_not(None).label("completed"),
            _upload.c.announced_at.is_not(None).label("announced"),
            _token.c.revoked_at.is_not(None).label("revoked"),
        ).join(_token, _token.c.token_hash == _upload.c.token_hash, isouter=True)
        if channel is not None and user_key is not None:
            query = query.where(_token.c.channel == channel, _token.c.user_key == user_key)
        with self._reader.connect() as conn:
            rows = conn.execute(query).all()
        claimed = self._claimed()
        removed = 0
        unfinished_revoked = []
        for row in rows:
            if row.id in claimed or not (row.revoked or row.announced):
                continue
            removed += self._remove_spool(row.id)
            if row.revoked and not row.completed:
                unfinished_revoked.append(row.id)
        if unfinished_revoked:
            with self.engine.begin() as conn:
                conn.execute(delete(_upload).where(_upload.c.id.in_(unfinished_revoked)))
        if channel is None:
            removed += self._remove_orphans({row.id for row in rows}, grace)
        return removed

    def _remove_orphans(self, known: set[str], grace: timedelta) -> int:
        cutoff = time.time() - grace.total_seconds()
        removed = 0
        for path in self.spool_dir.iterdir():
            if path.name.removesuffix(".part") in known:
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def _remove_spool(self, upload_id: str) -> int:
        path = self.spool_path(upload_id)
        if not path.exists():
            return 0
        path.unlink(missing_ok=True)
        return 1

    def _claimed(self) -> set[str]:
        """The uploads a pending ingest job will still read."""
        query = select(_job.c.payload_json).where(
            _job.c.kind == "ingest_file",
            _job.c.done_at.is_(None),
            _job.c.attempts < MAX_ATTEMPTS,
            _job.c.payload_json.contains(UPLOAD_SOURCE),
        )
        with self._reader.connect() as conn:
            payloads = conn.execute(query).scalars().all()
        return {found for payload in payloads for found in _UPLOAD_REFERENCE.findall(payload)}

    def open(self, source: str) -> BinaryIO:
        """The completed file behind "upload:<id>", decrypted as it is read (from a worker
        thread)."""
        upload_id = _upload_id(source)
        query = select(_upload.c.completed_at, _upload.c.size).where(_upload.c.id == upload_id)
        with self._reader.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.completed_at is None:
            raise FileNotFoundError("no completed upload with this id")
        spool = self.spool_path(upload_id).open("rb")
        return io.BufferedReader(_SpoolReader(spool, self.sealer, upload_id, row.size))

    def discard(self, source: str) -> None:
        """Delete the spool file once the file store holds the file."""
        self.spool_path(_upload_id(source)).unlink(missing_ok=True)

    def _lock_case(self, conn: Connection, case_id: str) -> None:
        """Serialise begin() per case, so two requests cannot both pass the quota check or
        start the same file twice. SQLite's BEGIN IMMEDIATE already serialises writers."""
        if self._postgres:
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(case_id))))

    def _create(self, upload_id: str) -> int:
        return open_private(self.spool_path(upload_id), os.O_RDWR)

    def _row(self, upload_id: str, case_id: str) -> Any:
        # A forged id, or another case's, is simply not found.
        if not _ID_SHAPE.fullmatch(upload_id):
            return None
        query = select(_upload.c.size, _upload.c.received, _upload.c.completed_at).where(
            _upload.c.id == upload_id, _upload.c.case_id == case_id
        )
        with self._reader.connect() as conn:
            return conn.execute(query).first()

    def _open_part(self, upload_id: str, grant: UploadGrant, offset: int) -> _OpenPart:
        row = self._row(upload_id, grant.case_id)
        if row is None:
            raise UploadRefused(UploadProblem.UNKNOWN_UPLOAD)
        if row.completed_at is not None:
            raise UploadRefused(UploadProblem.ALREADY_COMPLETE, offset=row.size)
        fd = self._create(upload_id)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Another request is still writing this file (a retry overtook it).
                raise UploadRefused(UploadProblem.BAD_OFFSET, offset=row.received) from None
            row = self._row(upload_id, grant.case_id)  # again, now that we hold the lock
            assert row is not None
            if row.completed_at is not None:
                raise UploadRefused(UploadProblem.ALREADY_COMPLETE, offset=row.size)
            if offset != row.received:
                raise UploadRefused(UploadProblem.BAD_OFFSET, offset=row.received)
            spool_start = _record_end(fd, row.received)
            if spool_start is None:
                # The spool does not hold what the row says (damaged): the file starts over.
                os.ftruncate(fd, 0)
                self._restart(upload_id, row.received)
                raise UploadRefused(UploadProblem.BAD_OFFSET, offset=0)
        except BaseException:
            os.close(fd)
            raise
        return _OpenPart(fd, upload_id, row.size, offset, offset, self.sealer, spool_start)

    def _restart(self, upload_id: str, received: int) -> None:
        statement = (
            update(_upload)
            .where(_upload.c.id == upload_id, _upload.c.received == received)
            .values(received=0)
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def _settle(self, part: _OpenPart, now: datetime) -> UploadState:
        """Make the written bytes durable, then record them (the row never claims more than
        the disk holds); closing the file releases the lock."""
        try:
            try:
                part.seal_rest()  # the bytes that did arrive before the connection broke
            except OSError:
                part.drop_rest()
            # Records past the end (a crash after writing, before the row said so) go.
            os.ftruncate(part.fd, part.spool_position)
            os.fsync(part.fd)
            complete = part.sealed == part.size
            statement = (
                update(_upload)
                .where(_upload.c.id == part.upload_id, _upload.c.received == part.start)
                .values(received=part.sealed, completed_at=now if complete else None)
                .returning(*_STATE_COLUMNS)
            )
            with self.engine.begin() as conn:
                row = conn.execute(statement).first()
        finally:
            os.close(part.fd)
        if row is None:
            raise UploadRefused(UploadProblem.BAD_OFFSET, offset=part.start)
        return _state(row)
