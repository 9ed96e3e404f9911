"""Repository-level checks: docker-compose.yml, the README's two commands, CI's entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_compose() -> None:
    schema = json.loads((ROOT / "tests" / "compose" / "compose-spec.json").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in Draft7Validator(schema).iter_errors(compose())]
    assert errors == []


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "worker", "producer"}
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"
    worker = services["worker"]
    assert worker["command"][:2] == ["dothis", "worker"] and worker["command"][-1] == "dothis.examples"
    assert "redis://redis:6379/0" in worker["command"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["producer"]["environment"]["DOTHIS_REDIS_URL"] == "redis://redis:6379/0"
    for service in ("worker", "producer"):
        build = services[service]["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file()
        for source in re.findall(r"^COPY (\S+)", dockerfile.read_text(), re.MULTILINE):
            assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"


def test_readme_names_the_two_commands_and_ci_runs_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert (ROOT / "scripts" / "demo.sh").is_file() and (ROOT / "scripts" / "test.sh").is_file()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
