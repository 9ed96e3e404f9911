#!/usr/bin/env python3
"""Copy the shared Lua of lua/lib/ into the scripts that include it (SPEC.md section 10).

Each lua/<name>.lua is a complete script: the exact bytes every implementation sends. Lua that
several scripts share lives once in lua/lib/<file>.lua and is copied into each script between two
marker lines:

    -- >>> lib/ending.lua (generated: edit lua/lib/ending.lua, then run scripts/build-lua.py)
    ...the bytes of lua/lib/ending.lua...
    -- <<< lib/ending.lua

    python3 scripts/build-lua.py           rewrite the blocks in place (prints the files changed)
    python3 scripts/build-lua.py --check   change nothing; exit 1 when a block is out of date

Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LUA_DIR = REPO / "lua"

BEGIN = re.compile(r"^-- >>> (lib/[A-Za-z0-9_-]+\.lua) \(generated: edit lua/(lib/[A-Za-z0-9_-]+\.lua), then run scripts/build-lua\.py\)$")
END = "-- <<< {name}"


class BuildError(Exception):
    """A script's include blocks are malformed, or name a missing library file."""


def begin_line(name: str) -> str:
    return f"-- >>> {name} (generated: edit lua/{name}, then run scripts/build-lua.py)"


def end_line(name: str) -> str:
    return END.format(name=name)


def blocks(text: str) -> list[tuple[str, int, int]]:
    """The include blocks of a script as (library name, start, end): text[start:end] is the body."""
    found = []
    lines = text.splitlines(keepends=True)
    offset = 0
    open_block: tuple[str, int] | None = None
    for number, line in enumerate(lines, 1):
        bare = line.rstrip("\r\n")
        if open_block is None:
            if bare.startswith("-- >>> "):
                match = BEGIN.match(bare)
                if match is None or match.group(1) != match.group(2):
                    raise BuildError(f"line {number}: malformed begin marker {bare!r}; expected {begin_line('lib/<file>.lua')!r}")
                open_block = (match.group(1), offset + len(line))
            elif bare.startswith("-- <<< "):
                raise BuildError(f"line {number}: end marker without a begin marker")
        elif bare.startswith("-- <<< "):
            name, start = open_block
            if bare != end_line(name):
                raise BuildError(f"line {number}: {bare!r} closes the block of {name}")
            found.append((name, start, offset))
            open_block = None
        elif bare.startswith("-- >>> "):
            raise BuildError(f"line {number}: a block of {open_block[0]} is not closed before another begins")
        offset += len(line)
    if open_block is not None:
        raise BuildError(f"the block of {open_block[0]} is never closed ({end_line(open_block[0])!r})")
    return found


def library(name: str, lua_dir: Path = LUA_DIR) -> str:
    path = lua_dir / name
    if not path.is_file():
        raise BuildError(f"lua/{name} does not exist")
    text = path.read_bytes().decode("utf-8")
    if not text.endswith("\n"):
        raise BuildError(f"lua/{name} must end with a newline")
    if "-- >>> " in text or "-- <<< " in text:
        raise BuildError(f"lua/{name} must not contain marker lines")
    return text


def render(text: str, lua_dir: Path = LUA_DIR) -> str:
    """The script with every include block holding the current bytes of its library file."""
    out, last = [], 0
    for name, start, end in blocks(text):
        out += [text[last:start], library(name, lua_dir)]
        last = end
    out.append(text[last:])
    return "".join(out)


def scripts(lua_dir: Path = LUA_DIR) -> list[Path]:
    """The scripts: lua/*.lua (lua/lib/ holds no scripts)."""
    return sorted(lua_dir.glob("*.lua"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is out of date")
    parser.add_argument("--lua-dir", type=Path, default=LUA_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stale = []
    for path in scripts(args.lua_dir):
        # bytes in, bytes out: no newline translation, so the file stays what clients send
        text = path.read_bytes().decode("utf-8")
        try:
            wanted = render(text, args.lua_dir)
        except BuildError as error:
            print(f"build-lua: {path.name}: {error}", file=sys.stderr)
            return 2
        if wanted != text:
            stale.append(path)
            if not args.check:
                path.write_bytes(wanted.encode("utf-8"))
    for path in stale:
        print(f"build-lua: {path.name} {'is out of date' if args.check else 'rewritten'}")
    if args.check and stale:
        print("build-lua: run scripts/build-lua.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
