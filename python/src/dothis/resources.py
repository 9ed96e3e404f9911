"""Where the shared protocol files (lua/, schema/) are: inside a built wheel, or the repository."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGED = Path(__file__).parent / "_protocol"
_REPOSITORY = Path(__file__).resolve().parents[3]


@cache
def protocol_dir(name: str) -> Path:
    """The ``lua`` or ``schema`` folder: the wheel's copy, else the repository's own."""
    for base in (_PACKAGED, _REPOSITORY):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"dothis cannot find its {name}/ folder (looked in {_PACKAGED} and {_REPOSITORY}): "
        "reinstall the package"
    )


def lua_source(script: str) -> str:
    return (protocol_dir("lua") / f"{script}.lua").read_text(encoding="utf-8")


@cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema of schema/, by file name (``task.schema.json``)."""
    with (protocol_dir("schema") / name).open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def protocol_constants() -> dict[str, Any]:
    return schema("protocol.json")
