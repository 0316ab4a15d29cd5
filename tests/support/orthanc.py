"""A real Orthanc (Debian's `orthanc`, `orthanc-dicomweb` and `orthanc-webviewer`, installed
by `make test`) on loopback, on free ports, with a generated configuration and its own
storage folder: never the system's service."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

PLUGINS = Path("/usr/share/orthanc/plugins")
USER = "huizhen"
PASSWORD = "test-orthanc-password"


@dataclass(frozen=True)
class RunningOrthanc:
    url: str
    user: str
    password: str

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(
            self.url + path, params=params, auth=(self.user, self.password), timeout=30
        )

    def studies(self) -> list[str]:
        return [str(study) for study in self.get("/studies").json()]

    def empty(self) -> None:
        for study in self.studies():
            requests.delete(
                f"{self.url}/studies/{study}", auth=(self.user, self.password), timeout=30
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_orthanc(folder: Path) -> Iterator[RunningOrthanc]:
    """Orthanc with its DICOMweb and web viewer plugins, its storage in `folder`, until the
    block ends (the benchmark uses it too)."""
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    if binary is None:
        raise FileNotFoundError("Orthanc is not installed (make orthanc)")
    port = free_port()
    config = {
        "Name": "huizhen-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "DicomPort": free_port(),
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "HttpThreadsCount": 8,
        "Plugins": [
            str(PLUGINS / "libOrthancDicomWeb.so"),
            str(PLUGINS / "libOrthancWebViewer.so"),
        ],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "WebViewer": {"CachePath": str(folder / "viewer-cache")},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
    )
    running = RunningOrthanc(f"http://127.0.0.1:{port}", USER, PASSWORD)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if running.get("/system").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not start: see " + str(folder / "orthanc.log"))
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOrthanc]:
    """One Orthanc for the test session; skipped only where the binary is missing (`make
    test` installs it, so CI never skips)."""
    try:
        with running_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
            yield running
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
