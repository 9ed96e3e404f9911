"""What importing dothis loads: facts, checked in a fresh interpreter (no timings here; the
figures are bench/startup.py's).

``import dothis`` resolves its public names lazily, so it loads none of the heavy dependencies;
a producer never loads the worker; the ``dothis`` command loads only the command it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "redis",
    "redis.asyncio",
    "click",
    "rich",
    "croniter",
    "prometheus_client",
    "opentelemetry",
    "jsonschema",
    "dothis.worker",
)


def loaded_after(code: str) -> set[str]:
    """The modules of ``sys.modules`` after running ``code`` in a new interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_dothis_loads_no_heavy_module() -> None:
    loaded = loaded_after("import dothis")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    ours = {name for name in loaded if name.startswith("dothis.")}
    assert ours == {"dothis.errors", "dothis.version"}, sorted(ours)


def test_public_names_resolve_on_first_use() -> None:
    loaded = loaded_after(
        "import dothis\n"
        "assert dothis.Queue.__name__ == 'Queue' and dothis.State.PENDING == 'pending'\n"
        "from dothis import task, TaskFailed, __version__\n"
        "assert set(dothis.__all__) <= set(dir(dothis))"
    )
    assert "dothis.producer.queue" in loaded
    assert "dothis.worker" not in loaded


def test_unknown_names_raise_attribute_error() -> None:
    import dothis

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dothis.nope  # type: ignore[attr-defined]


def test_a_producer_never_loads_the_worker() -> None:
    loaded = loaded_after("import dothis.producer.queue")
    for name in ("dothis.worker", "croniter", "click", "rich", "prometheus_client", "jsonschema"):
        assert name not in loaded, name
    # eager mode's flow (the worker's engine, asyncio's executors) comes only with eager mode
    assert "dothis.producer.eager" not in loaded


def test_a_cron_schedule_loads_croniter_when_it_is_made() -> None:
    loaded = loaded_after("import dothis.engine.registry")
    assert "croniter" not in loaded
    loaded = loaded_after(
        "from dothis.engine.registry import Schedule\nSchedule('nightly', 'f', cron='0 3 * * *')"
    )
    assert "croniter" in loaded


def test_the_command_loads_only_the_command_it_runs() -> None:
    loaded = loaded_after(
        "from dothis.cli import main\n"
        "try:\n"
        "    main(['enqueue', '--help'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    assert "dothis.cli.enqueue" in loaded
    for name in ("dothis.worker", "dothis.cli.worker", "dothis.cli.status", "dothis.testing",
                 "prometheus_client", "rich", "croniter", "jsonschema"):  # fmt: skip
        assert name not in loaded, name
    assert not loaded_after("import dothis.cli") & {"redis", "rich", "dothis.producer"}


def test_a_config_file_loads_only_the_command_it_runs(tmp_path: Path) -> None:
    config = tmp_path / "dothis.toml"
    config.write_text('url = "redis://127.0.0.1:1/0"\nqueue = "q"\n\n[worker]\nconcurrency = 2\n')
    loaded = loaded_after(
        "from dothis.cli import main\n"
        "try:\n"
        f"    main(['--config', {str(config)!r}, 'enqueue', '--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code"
    )
    assert "dothis.cli.enqueue" in loaded
    assert "dothis.cli.worker" not in loaded and "dothis.worker" not in loaded


def test_the_health_probe_does_not_load_rich() -> None:
    loaded = loaded_after(
        "from dothis.cli import main\n"
        "try:\n"
        "    main(['check', '--help'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    assert "dothis.cli.status" in loaded
    assert "rich" not in loaded and "dothis.worker" not in loaded


def test_a_worker_without_metrics_never_loads_prometheus_client() -> None:
    loaded = loaded_after("import dothis.cli.worker, dothis.worker.worker")
    assert "dothis.worker.worker" in loaded
    assert "prometheus_client" not in loaded and "dothis.worker.metrics" not in loaded
