"""The shared Lua of lua/lib/ is copied, byte for byte, into every script that includes it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from schema_support import LUA_DIR, REPO, protocol  # noqa: F401 - fixture

BUILD = REPO / "scripts" / "build-lua.py"
LIB_DIR = LUA_DIR / "lib"
ENDING = LIB_DIR / "ending.lua"
BEGIN = re.compile(
    r"^-- >>> (lib/[A-Za-z0-9_-]+\.lua) \(generated: edit lua/\1, then run scripts/build-lua\.py\)$"
)
# Every way a task ends goes through lib/ending.lua (SPEC.md 3.1, section 10).
ENDING_SCRIPTS = ("finish", "cancel", "release", "recover")


def include_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(library name, body) for every include block of a script, read as bytes."""
    found: list[tuple[str, bytes]] = []
    lines = data.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i].decode("utf-8").rstrip("\r\n")
        match = BEGIN.match(line)
        if line.startswith("-- >>> "):
            assert match, f"malformed begin marker {line!r}"
            name, body = match.group(1), []
            i += 1
            while i < len(lines) and lines[i].rstrip(b"\r\n") != f"-- <<< {name}".encode():
                assert not lines[i].startswith(b"-- >>> "), f"block of {name} not closed"
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"block of {name} is never closed"
            found.append((name, b"".join(body)))
        else:
            assert not line.startswith("-- <<< "), f"end marker without begin: {line!r}"
        i += 1
    return found


def outside_blocks(text: str) -> str:
    """The script without its include blocks."""
    return re.sub(r"(?ms)^-- >>> .*?^-- <<< [^\n]*\n", "", text)


def script_paths() -> list[Path]:
    return sorted(LUA_DIR.glob("*.lua"))


def test_the_library_exists_and_is_no_script(protocol: dict[str, Any]) -> None:
    assert ENDING.is_file()
    assert "ending" not in protocol["scripts"]
    assert sorted(p.stem for p in LUA_DIR.glob("*.lua")) == sorted(protocol["scripts"])


@pytest.mark.parametrize("path", script_paths(), ids=lambda p: p.name)
def test_every_block_equals_its_library_byte_for_byte(path: Path) -> None:
    for name, body in include_blocks(path.read_bytes()):
        library = LUA_DIR / name
        assert library.is_file(), f"{path.name} includes lua/{name}, which does not exist"
        assert body == library.read_bytes(), (
            f"{path.name}: the block of {name} differs from lua/{name}; run scripts/build-lua.py"
        )


@pytest.mark.parametrize("name", ENDING_SCRIPTS)
def test_every_ending_script_includes_ending_once(name: str) -> None:
    blocks = include_blocks((LUA_DIR / f"{name}.lua").read_bytes())
    assert [n for n, _ in blocks] == ["lib/ending.lua"]
    assert "end_task(" in outside_blocks((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ("start", "take"))
def test_start_and_take_share_lib_start_once(name: str) -> None:
    """start.lua and take.lua (SPEC.md 5.3, 5.18) run one copy of start: lib/start.lua."""
    blocks = include_blocks((LUA_DIR / f"{name}.lua").read_bytes())
    assert [n for n, _ in blocks] == ["lib/start.lua"]
    code = outside_blocks((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))
    assert "start_entry(" in code
    assert "'HGETALL'" not in code and "'HSETNX'" not in code, f"{name}.lua starts a task by itself"


@pytest.mark.parametrize("path", script_paths(), ids=lambda p: p.name)
def test_no_script_ends_a_task_by_itself(path: Path) -> None:
    """PUBLISH, EXPIRE, PERSIST and the registry ZADDs happen only in lib/ending.lua (requeue.lua,
    which makes an ended task unfinished again, PERSISTs its hash: SPEC.md 5.12; progress.lua,
    which publishes on the progress channel, not on the results channel: 5.16)."""
    body = outside_blocks(path.read_text(encoding="utf-8"))
    code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
    commands = ["EXPIRE", "SADD', KEYS[6]"]
    if path.name != "progress.lua":
        commands.append("PUBLISH")
    if path.name != "requeue.lua":
        commands.append("PERSIST")
    for command in commands:
        assert f"'{command}" not in code, f"{path.name} calls {command} outside lib/ending.lua"
    assert "local function end_task" not in code


def test_protocol_defaults_in_the_library(protocol: dict[str, Any]) -> None:
    text = ENDING.read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert f"'result-ttl', 'on-success', {protocol['defaults']['result-ttl']}" in code
    assert f"'failure-ttl', 'on-failure', {protocol['defaults']['failure-ttl']}" in code


def test_library_has_no_markers_and_ends_with_a_newline() -> None:
    for library in LIB_DIR.glob("*.lua"):
        data = library.read_bytes()
        assert data.endswith(b"\n") and b"\r" not in data, library.name
        assert b"-- >>> " not in data and b"-- <<< " not in data, library.name


def test_build_check_passes() -> None:
    done = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_rewrites_a_stale_block(tmp_path: Path) -> None:
    lua = tmp_path / "lua"
    shutil.copytree(LUA_DIR, lua)
    stale = lua / "cancel.lua"
    stale.write_bytes(stale.read_bytes().replace(b"local function end_task(e)", b"local function end_task(x)"))
    check = subprocess.run([sys.executable, str(BUILD), "--check", "--lua-dir", str(lua)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "cancel.lua" in check.stdout
    build = subprocess.run([sys.executable, str(BUILD), "--lua-dir", str(lua)], capture_output=True, text=True, timeout=60)
    assert build.returncode == 0, build.stderr
    assert stale.read_bytes() == (LUA_DIR / "cancel.lua").read_bytes()


def test_build_refuses_an_unclosed_block(tmp_path: Path) -> None:
    lua = tmp_path / "lua"
    shutil.copytree(LUA_DIR, lua)
    broken = lua / "finish.lua"
    broken.write_bytes(broken.read_bytes().replace(b"-- <<< lib/ending.lua\n", b""))
    done = subprocess.run([sys.executable, str(BUILD), "--lua-dir", str(lua)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "never closed" in done.stderr
