"""Time from starting `huizhen run` (the console channel on SQLite, no platform settings) to
its first prompt on the screen, against a bare `python -c pass` of the same interpreter.

Each run spawns `python -m bot run` in a fresh DATA_DIR (so the SQLite schema is created on
start, as on a first run) and once more in the same folder (the conversation resumes), reads
its standard output until the input prompt appears, then sends /quit. The median of the runs
is reported. Bytecode is cached (in a temporary folder) as it is for an installed bot, after
one warm-up run.

    .venv/bin/python benchmarks/startup.py            # 5 runs each
    .venv/bin/python benchmarks/startup.py --runs 11

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = b"\n> "
# Settings that would start another channel than the console.
PLATFORM_SETTINGS = ("TELEGRAM_BOT_TOKEN", "WECHAT_APP_ID", "WECHAT_TOKEN", "PUBLIC_BASE_URL")
AIM_SECONDS = 0.5
PYCACHE = Path(tempfile.gettempdir()) / "huizhen-bench-startup-pycache"


def time_to_prompt(data_dir: Path, timeout: float = 30.0) -> float:
    """Seconds from spawning `python -m bot run` to its first input prompt."""
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_SETTINGS}
    env.pop("DATABASE_URL", None)
    env["DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    # Bytecode cached as an installed bot has it, outside the source tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None and process.stdin is not None
    seen = b""
    try:
        while PROMPT not in seen:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"bot exited before its first prompt: {seen[-300:]!r}")
            seen += chunk
            if time.perf_counter() - started > timeout:
                raise RuntimeError("no prompt within the timeout")
        seconds = time.perf_counter() - started
        process.stdin.write(b"/quit\n")
        process.stdin.close()
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return seconds


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    first: list[float] = []
    again: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-startup-") as folder:
        time_to_prompt(Path(folder) / "data")  # a warm-up run fills the bytecode cache
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="huizhen-bench-startup-") as folder:
            first.append(time_to_prompt(Path(folder) / "data"))
            again.append(time_to_prompt(Path(folder) / "data"))
        bare.append(bare_python())
    figures = {
        "benchmark": "startup",
        "first_run_s": round(statistics.median(first), 3),
        "again_s": round(statistics.median(again), 3),
        "bare_python_s": round(statistics.median(bare), 3),
        "runs": args.runs,
        "aim_s": AIM_SECONDS,
    }
    print(f"huizhen run to its first prompt, median of {args.runs} runs:")
    print(f"  new DATA_DIR (schema created)  {figures['first_run_s']:.3f} s")
    print(f"  same DATA_DIR (resumed)        {figures['again_s']:.3f} s")
    print(f"  bare python -c pass            {figures['bare_python_s']:.3f} s")
    slowest = max(figures["first_run_s"], figures["again_s"])
    print(f"aim {AIM_SECONDS} s: {'met' if slowest <= AIM_SECONDS else 'not met'}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
