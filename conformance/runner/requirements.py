"""The requirement ids of SPEC.md (section 1.5) and its conformance profiles (section 14).

Every MUST and SHOULD of SPEC.md starts with a bold id, ``**[W-START-2]**``; section 14 lists the
ids of each profile. This module reads both from SPEC.md itself, so the document stays the one
source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .casefile import SPEC

TAG = re.compile(r"\*\*\[([A-Z]+-[A-Z]+-\d+)\]\*\*")
ID = re.compile(r"`([A-Z]+-[A-Z]+-\d+)`")
MUST = re.compile(r"\b(MUST|REQUIRED|SHALL)\b")
PROFILES = ("producer", "core-worker", "full-worker")
_PROFILE_HEADINGS = {"14": "deployment", "14.1": "producer", "14.2": "core-worker", "14.3": "full-worker"}


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str  # MUST | SHOULD
    section: str  # the numbered heading it appears under, e.g. "5.3 Start"
    text: str  # the sentence(s) from the id to the next id or the end of the paragraph


def _strip_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def requirements(spec_path: Path = SPEC) -> dict[str, Requirement]:
    """Every tagged requirement of SPEC.md, in document order."""
    lines = _strip_fences(spec_path.read_text(encoding="utf-8"))
    found: dict[str, Requirement] = {}
    section = ""
    for number, line in enumerate(lines):
        heading = re.match(r"^#{2,3} (\d+(?:\.\d+)*\.? .*)$", line)
        if heading:
            section = heading.group(1)
            continue
        for match in TAG.finditer(line):
            # the requirement's text: to the next tag, or the end of its paragraph / table row
            rest = [line[match.end():]]
            if not line.startswith("|"):
                for following in lines[number + 1:]:
                    if not following.strip() or following.startswith(("|", "#")):
                        break
                    rest.append(following)
            text = " ".join(part.strip() for part in rest)
            text = TAG.split(text, maxsplit=1)[0].strip()
            if match.group(1) in found:
                raise ValueError(f"SPEC.md: requirement id {match.group(1)} appears twice")
            level = "MUST" if MUST.search(text) else "SHOULD"
            found[match.group(1)] = Requirement(match.group(1), level, section, text)
    return found


def profiles(spec_path: Path = SPEC) -> dict[str, set[str]]:
    """producer, core-worker and full-worker: the ids section 14 lists (full includes core); and
    deployment: the ids its introduction names as binding operators, in no profile."""
    lines = _strip_fences(spec_path.read_text(encoding="utf-8"))
    listed: dict[str, set[str]] = {name: set() for name in (*PROFILES, "deployment")}
    current = None
    for line in lines:
        heading = re.match(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", line)
        if heading:
            current = _PROFILE_HEADINGS.get(heading.group(1))
            continue
        if current and (line.startswith("Requirements:") or current == "deployment"):
            listed[current] |= set(ID.findall(line))
    listed["full-worker"] |= listed["core-worker"]
    return listed
