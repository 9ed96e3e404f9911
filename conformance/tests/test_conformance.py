"""Runs the conformance suite under pytest, and checks the suite itself.

    .venv/bin/python -m pytest conformance/tests
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

CONFORMANCE = Path(__file__).resolve().parent.parent
REPO = CONFORMANCE.parent
RUN = CONFORMANCE / "run.py"
sys.path.insert(0, str(CONFORMANCE))

from runner.casefile import check_anchors, github_slug, load_cases  # noqa: E402
from runner.coverage import coverage  # noqa: E402
from runner.requirements import PROFILES, profiles, requirements  # noqa: E402


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def node_available() -> bool:
    return (shutil.which("node") is not None
            and (CONFORMANCE / "harnesses" / "node" / "harness.mjs").exists()
            and (REPO / "node-client" / "dist").is_dir())


# ------------------------------------------------------------------ self-checks

def test_case_schema_is_a_valid_schema() -> None:
    schema = json.loads((CONFORMANCE / "case.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_case_file_validates() -> None:
    cases, problems = load_cases()
    assert problems == []
    assert len(cases) >= 40


def test_every_cited_spec_anchor_exists() -> None:
    assert (REPO / "SPEC.md").exists(), "SPEC.md is missing"
    cases, _ = load_cases()
    assert check_anchors(cases) == []


def test_every_case_names_a_spec_anchor_and_a_role() -> None:
    cases, _ = load_cases()
    for case in cases:
        assert case.anchors and all(a.startswith("SPEC.md#") for a in case.anchors), case.id
        assert case.tests in ("producer", "worker"), case.id


@pytest.mark.parametrize(("heading", "slug"), [
    ("5. Operations", "5-operations"),
    ("5.2 Claim", "52-claim"),
    ("9.2 Leases, heartbeats and the reaper", "92-leases-heartbeats-and-the-reaper"),
    ("`HMGET` before the result", "hmget-before-the-result"),
])
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading.replace("`", "")) == slug


def test_a_malformed_case_is_refused(tmp_path: Path) -> None:
    area = tmp_path / "broken"
    area.mkdir()
    (area / "no-steps.yaml").write_text("id: no-steps\ndescription: a case without steps\n"
                                        "spec: SPEC.md#5-operations\ntests: worker\nrequirements: []\n")
    (area / "wrong-name.yaml").write_text(
        "id: other\ndescription: id differs from the file name\nspec: SPEC.md#5-operations\n"
        "tests: producer\nrequirements: []\nsteps: [{sleep_ms: 1}]\nexpectations: [{expect_missing: x}]\n")
    (area / "unknown-requirement.yaml").write_text(
        "id: unknown-requirement\ndescription: cites an id SPEC.md does not have\nspec: SPEC.md#5-operations\n"
        "tests: producer\nrequirements: [W-NOPE-1]\nsteps: [{sleep_ms: 1}]\nexpectations: [{expect_missing: x}]\n")
    result = run("--check-only", "--cases", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no-steps.yaml" in result.stderr and "wrong-name.yaml" in result.stderr
    assert "W-NOPE-1" in result.stderr


def test_a_failing_expectation_fails_the_run(tmp_path: Path) -> None:
    area = tmp_path / "selfcheck"
    area.mkdir()
    (area / "deliberately-wrong.yaml").write_text(
        "id: deliberately-wrong\ndescription: an expectation that cannot hold\n"
        "spec: SPEC.md#5-operations\ntests: producer\nrequirements: []\n"
        "steps:\n  - redis: [SET, '${queue}:x', 'a']\n"
        "expectations:\n  - redis: [GET, '${queue}:x']\n    expect: '\"b\"'\n")
    result = run("--cases", str(tmp_path), "--impl", "redis-cli", "-j", "1", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deliberately-wrong: FAIL" in result.stdout


# ------------------------------------------------------------------ requirements and coverage

def test_spec_requirements_have_ids_and_levels() -> None:
    reqs = requirements()
    assert len(reqs) >= 90
    assert reqs["W-START-2"].level == "MUST" and reqs["W-START-2"].section == "5.3 Start"
    assert reqs["C-ENC-5"].level == "SHOULD"
    assert all(r.text for r in reqs.values())


def test_every_requirement_is_in_a_profile_and_profiles_nest() -> None:
    listed = profiles()
    reqs = requirements()
    assert set().union(*listed.values()) == set(reqs)
    assert listed["core-worker"] < listed["full-worker"]
    assert {"W-CLAIM-1", "W-START-2", "W-RECOVER-1", "W-CHECK-1"} <= listed["core-worker"]
    assert "W-FOLLOW-3" in listed["full-worker"] - listed["core-worker"]
    assert {"P-ENQ-1", "P-WAIT-3"} <= listed["producer"]
    assert PROFILES == ("producer", "core-worker", "full-worker")


def test_every_must_is_cited_by_a_case_or_untestable() -> None:
    cases, problems = load_cases()
    assert problems == []
    result = coverage(cases)
    assert result.problems == [], "\n".join(result.problems)


def test_an_uncovered_must_fails_the_coverage_check(tmp_path: Path) -> None:
    cases, _ = load_cases()
    without = [c for c in cases if "W-CHECK-1" not in c.data["requirements"]]
    empty = tmp_path / "untestable.yaml"
    empty.write_text("{}\n")
    problems = coverage(without, untestable_path=empty).problems
    assert any(p.startswith("W-CHECK-1 (MUST") for p in problems)
    stale = tmp_path / "stale.yaml"
    stale.write_text("W-CHECK-1: cited by many cases\nX-NONE-1: no such id\n")
    problems = coverage(cases, untestable_path=stale).problems
    assert any("W-CHECK-1 is cited by" in p for p in problems)
    assert any("X-NONE-1 is not a requirement" in p for p in problems)


def test_check_only_runs_the_coverage_check() -> None:
    result = run("--check-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requirement" in result.stdout


# ------------------------------------------------------------------ the suite

def test_conformance_suite(tmp_path: Path) -> None:
    """Every case against the Python implementation, redis-cli, and Node when it is built; with Node,
    also the parity matrix: every producer (Python, Node, redis-cli) with every worker."""
    node = node_available()
    impls = ["python", "redis-cli"] + (["node"] if node else [])
    markdown, report = tmp_path / "conformance.md", tmp_path / "conformance.json"
    args = [arg for name in impls for arg in ("--impl", name)] + (["--matrix"] if node else [])
    result = run(*args, "--markdown", str(markdown), "--report", str(report), "-j", "3", timeout=600)
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    assert result.returncode == 0, "conformance failures:\n" + result.stdout[-20000:] + result.stderr[-5000:]
    data = json.loads(report.read_text())
    assert data["summary"]["FAIL"] == 0 and data["summary"]["XPASS"] == 0
    columns = {c["name"] for c in data["columns"]}
    if node:
        assert {"python>node", "node>python", "redis-cli>node"} <= columns
        assert "parity matrix" in result.stdout
    for case in data["cases"]:
        for column, cell in case["results"].items():
            assert cell["status"] in ("pass", "skip", "gap"), (case["id"], column, cell)
    assert "| case |" in markdown.read_text()


# ------------------------------------------------------------------ on a Redis Cluster

# The whole suite on a cluster takes about two minutes on a small machine (run.py --cluster runs it
# all); CI runs these cases, chosen for what a cluster changes: keys of the queue's slot named by
# redis-cli -c, the registry dothis.queues in another slot, dependencies, delays, cancel, the reaper,
# results and the results channel through one node, the schedule's queue {conf-periodic}, and the
# seed transcript skipped with its reason.
CLUSTER_CASES = (
    "raw-enqueue", "raw-fifo-order", "requeue-persists", "queue-registry", "producer-enqueue-many",
    "depends-on", "delay", "cancel", "periodic-occurrences", "seed-transcript", "results-message",
    "dead-worker-recovered", "wait-returns-value", "worker-manifest", "hash-tagged-queue",
)


def test_case_queue_carries_a_hash_tag_on_a_cluster() -> None:
    from runner.steps import case_queue

    cases = {c.id: c for c in load_cases()[0]}
    assert case_queue(cases["raw-enqueue"], "conf-1a2b3c4d", cluster=True) == "{conf-1a2b3c4d}"
    assert case_queue(cases["raw-enqueue"], "conf-1a2b3c4d", cluster=False) == "conf-1a2b3c4d"
    assert case_queue(cases["periodic-occurrences"], "x", cluster=True) == "{conf-periodic}"
    assert case_queue(cases["periodic-occurrences"], "x", cluster=False) == "conf-periodic"
    assert case_queue(cases["hash-tagged-queue"], "x", cluster=True) == "{tagged}"


def test_conformance_suite_on_a_cluster(tmp_path: Path) -> None:
    """The cases above on a three-master Redis Cluster per lane (tagged queue names, ?cluster=1,
    redis-cli -c), against Python, redis-cli, and Node when it is built."""
    impls = ["python", "redis-cli"] + (["node"] if node_available() else [])
    report = tmp_path / "cluster.json"
    args = [arg for name in impls for arg in ("--impl", name)] + [arg for c in CLUSTER_CASES for arg in ("--case", c)]
    result = run("--cluster", *args, "--report", str(report), "-j", "3", timeout=300)
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    assert result.returncode == 0, "conformance failures on the cluster:\n" + result.stdout[-20000:] + result.stderr[-5000:]
    data = json.loads(report.read_text())
    cells = {(case["id"], column): cell for case in data["cases"] for column, cell in case["results"].items()}
    assert {case_id for case_id, _ in cells} == set(CLUSTER_CASES)
    for name in impls:
        assert cells[("seed-transcript", name)]["status"] == "skip"
        assert "on a cluster" in cells[("seed-transcript", name)]["detail"]
        assert cells[("raw-enqueue", name)]["status"] == "pass", name
    for name in set(impls) - {"redis-cli"}:
        passed = [case_id for (case_id, column), cell in cells.items() if column == name and cell["status"] == "pass"]
        assert len(passed) == len(CLUSTER_CASES) - 1, (name, sorted(passed))
