"""Where the shared protocol files (lua/, schema/) are: inside a built wheel, or the repository."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGED = Path(__file__).resolve().parents[1] / "_protocol"  # dothis/_protocol in a wheel
_REPOSITORY = Path(__file__).resolve().parents[4]


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
