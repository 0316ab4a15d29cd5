"""The file store: what is on disk is encrypted, reads back exactly, and refuses tampering."""

from __future__ import annotations

import base64
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import build_app
from bot.cli import main
from bot.config import ConfigError, load_settings
from storage.files import (
    CHUNK_SIZE,
    HEADER_BYTES,
    CorruptFile,
    FileStore,
    FileTooLarge,
    load_key,
)

KEY = bytes(range(32))
MARKER = b"PATIENT^JANE DOE 1961-04-02 "


def _store(tmp_path: Path, key: bytes = KEY) -> FileStore:
    return FileStore(tmp_path / "files", key)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]
)
def test_a_file_reads_back_exactly_and_is_not_readable_on_disk(tmp_path: Path, size: int) -> None:
    content = (MARKER * (size // len(MARKER) + 1))[:size]
    store = _store(tmp_path)
    stored = store.put(io.BytesIO(content))
    assert stored.size == size and stored.created
    with store.open(stored.sha256) as stream:
        assert stream.read() == content
    on_disk = store.path_of(stored.sha256).read_bytes()
    if size >= len(MARKER):
        assert MARKER not in on_disk  # the patient's name is nowhere in plain text


@settings(max_examples=25, deadline=None)
@given(
    reads=st.lists(st.tuples(st.integers(0, 3 * CHUNK_SIZE), st.integers(0, 70_000)), max_size=8)
)
def test_random_access_reads_what_was_written(
    tmp_path_factory: pytest.TempPathFactory, reads: list[tuple[int, int]]
) -> None:
    tmp_path = tmp_path_factory.mktemp("store")
    content = os.urandom(2 * CHUNK_SIZE + 1234)
    store = _store(tmp_path)
    sha = store.put(io.BytesIO(content)).sha256
    with store.open(sha) as stream:
        for offset, length in reads:
            stream.seek(offset)
            assert stream.read(length) == content[offset : offset + length]


def test_the_same_file_twice_is_stored_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.put(io.BytesIO(b"scan report"))
    second = store.put(io.BytesIO(b"scan report"))
    assert first.sha256 == second.sha256
    assert first.created and not second.created
    assert list((tmp_path / "files" / "incoming").iterdir()) == []


def test_an_altered_file_is_refused_not_misread(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sha = store.put(io.BytesIO(b"x" * (CHUNK_SIZE + 10))).sha256
    path = store.path_of(sha)
    data = bytearray(path.read_bytes())
    data[HEADER_BYTES + 5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFile), store.open(sha) as stream:
        stream.read()


def test_a_file_cut_at_a_chunk_boundary_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sha = store.put(io.BytesIO(b"y" * (2 * CHUNK_SIZE + 10))).sha256
    path = store.path_of(sha)
    data = path.read_bytes()
    path.write_bytes(data[: HEADER_BYTES + 2 * (CHUNK_SIZE + 16)])
    with pytest.raises(CorruptFile), store.open(sha) as stream:
        stream.read()


def test_another_key_cannot_read_it(tmp_path: Path) -> None:
    sha = _store(tmp_path).put(io.BytesIO(b"secret")).sha256
    with pytest.raises(CorruptFile), _store(tmp_path, bytes(32)).open(sha) as stream:
        stream.read()


def test_a_file_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(FileTooLarge):
        store.put(io.BytesIO(b"z" * (CHUNK_SIZE * 2)), max_bytes=CHUNK_SIZE)
    leftovers = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert leftovers == []


def test_the_generated_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    key = load_key(None, tmp_path)
    path = tmp_path / "file-encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(None, tmp_path) == key and len(key) == 32


def test_workers_starting_at_once_all_get_the_one_generated_key(tmp_path: Path) -> None:
    """Four processes start together without FILE_ENCRYPTION_KEY: none reads a half-written
    key file, and all of them encrypt with the same key."""
    script = "import sys; from pathlib import Path; from storage.files import load_key; "
    script += "print(load_key(None, Path(sys.argv[1])).hex())"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    keys = set()
    for process in starts:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        keys.add(out.strip())
    assert len(keys) == 1
    assert (tmp_path / "file-encryption.key").read_bytes().hex() in keys
    assert [p.name for p in tmp_path.iterdir()] == ["file-encryption.key"]  # no leftovers


def test_a_malformed_key_setting_stops_start_up_with_a_message() -> None:
    with pytest.raises(ConfigError, match="FILE_ENCRYPTION_KEY"):
        load_settings({"FILE_ENCRYPTION_KEY": "not-a-key"})


def test_a_key_rotation_keeps_every_file_readable_throughout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = base64.urlsafe_b64encode(bytes(32)).decode(), base64.urlsafe_b64encode(KEY).decode()
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FILE_ENCRYPTION_KEY", old)
    app = build_app(load_settings())
    contents = [os.urandom(CHUNK_SIZE + n) for n in (1, 2, 3)]
    shas = [app.pipeline.files.put(io.BytesIO(data)).sha256 for data in contents]
    app.close()

    # Workers restarted with the new key, the old one kept for reading: all still readable.
    monkeypatch.setenv("FILE_ENCRYPTION_KEY", new)
    monkeypatch.setenv("FILE_ENCRYPTION_OLD_KEYS", old)
    during = FileStore(tmp_path / "data" / "files", KEY, [bytes(32)])
    assert all(during.needs_new_key(sha) for sha in shas)
    assert main(["rotate-key"]) == 0
    assert "3 files written under the current key" in capsys.readouterr().out
    assert main(["rotate-key"]) == 0  # again: nothing left to do
    assert "0 files written" in capsys.readouterr().out

    after = FileStore(tmp_path / "data" / "files", KEY)  # the old key is gone
    for sha, data in zip(shas, contents, strict=True):
        with after.open(sha) as stream:
            assert stream.read() == data
