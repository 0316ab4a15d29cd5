"""Coverage-guided fuzzing of the targets of tests/test_fuzzing.py with atheris (libFuzzer),
for long runs by hand. atheris is not a project dependency:

    pip install atheris
    python -m tests.fuzz_atheris dicom -max_total_time=300 -timeout=2 -rss_limit_mb=1024

Targets: telegram, wechat, zip, tar, dicom. An input fails when it raises anything but the
errors the callers expect, or breaks one of the checks in tests/support/fuzz_checks.py (safe member
paths, storable updates, no external entity fetched…); libFuzzer then saves it as crash-*.
Without a corpus folder on the command line, one is made from the same seeds hypothesis uses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris  # type: ignore[import-not-found, import-untyped, unused-ignore]

# What the targets run is imported (and so instrumented, for coverage) with the checks.
INSTRUMENTED = ["bot", "handlers", "records", "storage", "pydicom", "xmltodict", "wechatpy"]
with atheris.instrument_imports(include=[*INSTRUMENTED, "telegram", "zipfile", "tarfile"]):
    from bot.channels.wechat_runtime import MAX_BODY_BYTES
    from records.archives import safe_member_path
    from records.classify import FileKind
    from tests.support import fuzz_checks as checks


def telegram(data: bytes) -> None:
    for library in ("ptb", "aiogram"):
        checks.check_incoming(checks.read_or_refuse(checks.telegram_client(library), data))


def wechat_message(data: bytes) -> None:
    if len(data) <= MAX_BODY_BYTES:
        checks.check_wechat(checks.read_message(data, {}))


def archive(kind: FileKind) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        for path, _ in checks.unpack_all(data, kind).files:
            assert safe_member_path(path) == path

    return target


def dicom_file(data: bytes) -> None:
    for outcome in checks.inspect_dicom(data, on_disk=False):
        checks.check_dicom(outcome)


def seeds(target: str) -> list[bytes]:
    if target == "telegram":
        return [json.dumps(checks.A_REAL_UPDATE).encode()]
    if target == "wechat":
        return [checks.wechat_xml(MsgType="text", MsgId="1", Content="/start clinic-7")]
    if target == "dicom":
        return [checks.dicom_seed(name) for name in checks.DICOM_SEEDS]
    files = (checks.Spec("CD/DICOM/IM0001", "file", b"DICM" * 64), checks.Spec("CD", "dir"))
    formats = ["zip", "zip-stored"] if target == "zip" else ["tar", "tar.gz", "gnutar"]
    return [checks.ArchiveCase(files, form).intact() for form in formats]


TARGETS: dict[str, Callable[[bytes], None]] = {
    "telegram": telegram,
    "wechat": wechat_message,
    "zip": archive(FileKind.ZIP),
    "tar": archive(FileKind.TAR),
    "dicom": dicom_file,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz_atheris {{{','.join(TARGETS)}}} [libFuzzer options]")
    target, options = sys.argv[1], sys.argv[2:]
    if not any(not option.startswith("-") for option in options):
        corpus = Path(tempfile.mkdtemp(prefix=f"huizhen-fuzz-{target}-"))
        for number, seed in enumerate(seeds(target)):
            (corpus / f"seed-{number}").write_bytes(seed)
        options.append(str(corpus))
    atheris.Setup([sys.argv[0], *options], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
