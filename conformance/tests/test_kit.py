"""The conformance kit as a stranger installs it: the wheel, built from this directory and
installed into a fresh virtualenv outside the repository, runs against the Python harness.

The wheel's build needs hatchling (pip fetches it into an isolated build environment). The fresh
virtualenv gets the kit with --no-deps and finds redis, pyyaml and jsonschema through a .pth file
naming this virtualenv's site-packages, so the test needs no index beyond the build.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parent.parent
REPO = CONFORMANCE.parent
CASES = ["raw-enqueue", "wait-returns-value", "wait-each-outcome", "missing-hash"]


def sh(*argv: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dothis-conformance command of a fresh virtualenv holding only the built wheel."""
    tmp = tmp_path_factory.mktemp("kit")
    built = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", CONFORMANCE, cwd=tmp)
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed (it needs hatchling from the package index):\n{built.stderr[-3000:]}")
    wheels = list((tmp / "dist").glob("dothis_conformance-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    assert sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp).returncode == 0
    python = venv / "bin" / "python"
    installed = sh(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheels[0], cwd=tmp)
    assert installed.returncode == 0, installed.stderr
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip()
    (Path(site) / "_dothis_conformance_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "dothis-conformance"


def test_the_wheel_carries_the_cases_schemas_and_scripts(kit: Path) -> None:
    python = kit.parent / "python"
    code = ("import dothis_conformance.casefile as c; print(c.CASES_DIR); "
            "print(len(list(c.CASES_DIR.glob('*/*.yaml')))); print((c.REPO / 'lua' / 'start.lua').exists()); "
            "print((c.REPO / 'schema' / 'task.schema.json').exists()); print(c.SPEC.exists())")
    out = sh(python, "-c", code, cwd=kit.parent).stdout.split()
    assert "site-packages" in out[0] and not out[0].startswith(str(REPO))
    assert int(out[1]) == len(list((CONFORMANCE / "cases").glob("*/*.yaml")))
    assert out[2:] == ["True", "True", "True"]
    checked = sh(kit, "check", cwd=kit.parent)
    assert checked.returncode == 0, checked.stderr


def test_the_installed_kit_runs_a_harness_and_writes_the_report(kit: Path, tmp_path: Path) -> None:
    harness = f"{sys.executable} {REPO / 'conformance' / 'harnesses' / 'python' / 'harness.py'}"
    args = [kit, "run", "--harness", harness, "--report", tmp_path / "report.json",
            "--markdown", tmp_path / "report.md", "-j", "2"]
    for case in CASES:
        args += ["--case", case]
    result = sh(*args, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert "conformance: 4 passed, 0 failed" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["id"] for c in report["cases"]] == sorted(CASES, key=[c["id"] for c in report["cases"]].index)
    assert {c["id"] for c in report["cases"]} == set(CASES)
    assert all(c["results"]["harness"]["status"] == "pass" for c in report["cases"])
    assert report["requirements"]["P-WAIT-3"]["status"]["harness"] == "pass"
    assert report["requirements"]["C-CLOCK-1"]["status"]["harness"] == "untestable"
    assert report["columns"][0]["profiles_reached"] == ["producer", "core-worker", "full-worker"]
    assert "| case | harness |" in (tmp_path / "report.md").read_text()


def test_a_broken_harness_fails_the_run(kit: Path, tmp_path: Path) -> None:
    result = sh(kit, "run", "--harness", f"{sys.executable} -c pass", "--case", "raw-enqueue", cwd=tmp_path)
    assert result.returncode != 0
    assert "harness did not start" in result.stdout + result.stderr
