"""The real entry points, as an operator runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import build_app
from bot.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


def huizhen(
    data_dir: Path, *args: str, stdin: str = "", **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "LANG": "C.UTF-8"}
    for name in ("TELEGRAM_BOT_TOKEN", "WECHAT_APP_ID", "DATABASE_URL", "LC_ALL", "LC_MESSAGES"):
        env.pop(name, None)
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_huizhen_run_chats_on_the_console_and_queue_list_shows_the_case(tmp_path: Path) -> None:
    empty = huizhen(tmp_path, "queue", "list")
    assert empty.returncode == 0 and "The queue is empty." in empty.stdout

    # 1 no emergency, 1 continue, 1 agree, 1 agree, 1 for me, who the patient is and the
    # background (2 male, 3 English, 1 skip / no Chinese name), 1 new diagnosis, 10 done,
    # six situation answers, 1 continue, 1 cardio-vascular, the diagnosis, the main worry...
    # typed as a person would.
    answers = [
        "1",
        "1",
        "1",
        "1",
        "1",
        "John Smith",
        "1",
        "1961-07-04",
        "2",
        "United Kingdom, Leeds",
        "United Kingdom",
        "3",
        "1",
        "High blood pressure since 2010",
        "Ramipril 5 mg once a day",
        "1",
        "1",
        "10",
        "2",
        "1",
        "1",
        "2",
        "2",
        "1",
        "1",
        "2",
        "Aortic valve stenosis, surgeons propose valve replacement",
        "A narrowed heart valve since 2023; is replacing it now the right step?",
        "1",
        "1",
        "1",
        "4",
        "2023-01: breathless on stairs",
        "2024-02-03: echocardiogram",
        "1",
    ]
    answers += ["2"] * 8  # each of the eight record items: "I will get it later"
    answers += ["1", "1"]  # continue to review, submit
    result = huizhen(tmp_path, "run", stdin="\n".join(answers) + "\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "Your case has been submitted" in result.stdout, result.stdout[-2000:]
    assert "Traceback" not in result.stderr

    listing = huizhen(tmp_path, "queue", "list")
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("HZ-") and "submitted" in lines[0] and "cardiovascular" in lines[0]
    assert lines[0].split()[0] in result.stdout


def test_default_locale_wins_over_a_generic_system_locale(tmp_path: Path) -> None:
    """Containers say LANG=C.UTF-8, which names no language: DEFAULT_LOCALE decides."""
    for lang in ("C.UTF-8", "C", "POSIX"):
        result = huizhen(tmp_path / lang, "chat", stdin="/quit\n", LANG=lang, DEFAULT_LOCALE="de")
        assert result.returncode == 0, result.stderr
        assert "Hallo, ich bin Huizhen" in result.stdout, (lang, result.stdout[:300])
    # A real language in LANG is still a first guess.
    french = huizhen(
        tmp_path / "fr", "chat", stdin="/quit\n", LANG="fr_FR.UTF-8", DEFAULT_LOCALE="de"
    )
    assert "Bonjour" in french.stdout and "Hallo" not in french.stdout, french.stdout[:300]


def test_the_console_serves_the_upload_page_when_it_hands_out_links(tmp_path: Path) -> None:
    """`huizhen run` with no platform but PUBLIC_BASE_URL chats on the console, and the links
    it hands out open: the web app runs beside it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "WEB_PORT": str(port)}
    env = {**os.environ, "DATA_DIR": str(tmp_path), "LANG": "C.UTF-8", **settings}
    for name in ("TELEGRAM_BOT_TOKEN", "WECHAT_APP_ID", "DATABASE_URL"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
    )
    try:
        app = build_app(load_settings({"DATA_DIR": str(tmp_path), **settings}))
        try:
            token = app.upload_tokens.issue(
                case_id="case-1",
                channel="console",
                user_key="local",
                chat_key="local",
                locale="en",
                now=datetime.now(UTC),
                ttl=timedelta(hours=1),
            )
        finally:
            app.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/u/{token}", timeout=5
                ) as page:
                    assert page.status == 200
                    assert "Send your medical files" in page.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the upload page never answered"
                time.sleep(0.2)
        out, err = process.communicate("/quit\n", timeout=30)
        assert process.returncode == 0, err
        assert "Huizhen console" in out and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
