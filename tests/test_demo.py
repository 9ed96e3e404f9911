"""The README's demo command runs end to end and prints the results from every producer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_cleans_up() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DOTHIS_REDIS_URL"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], capture_output=True,
                          text=True, timeout=300, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "started a private redis-server" in out
    assert '1) "successful"\n2) "\\"ooh yeeah\\""' in out
    assert "add(a=2, b=3) -> 5" in out
    assert "failed: exception: on purpose" in out
    assert "echo -> ooh yeeah from Node" in out
