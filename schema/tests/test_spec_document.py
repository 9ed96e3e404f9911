"""SPEC.md: every JSON example validates, every constant of protocol.json is named, anchors resolve."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest

from schema_support import LUA_DIR, PRIMER, SPEC, all_schemas, protocol, spec_text, validator  # noqa: F401 - fixtures

FENCE = re.compile(r"^```(\w*)\s*$")
SCHEMA_COMMENT = re.compile(r"^<!-- schema: ([\w.-]+\.schema\.json) -->$")
HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")

# The original session of the key schema, as SPEC.md section 13 must show it.
SEED_TRANSCRIPT = [
    "HSET dothis:task:11111111-2222-2222-2222-333333333333 function echo",
    "HSET dothis:task:11111111-2222-2222-2222-333333333333 state pending",
    "HSET dothis:task:11111111-2222-2222-2222-333333333333 args '{ \"text\": \"ooh yeeah\" }'",
    "LPUSH dothis:pending 11111111-2222-2222-2222-333333333333",
    "HMGET dothis:task:11111111-2222-2222-2222-333333333333 result result-value",
    '1) "successful"',
    '2) "\\"ooh yeeah\\""',
    "SUBSCRIBE dothis:results",
    '3) "dothis:task:11111111-2222-2222-2222-333333333333"',
    "HGETALL dothis:task:11111111-2222-2222-2222-333333333333",
]


def blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """Fenced blocks as (line number, language, body, schema named by the line before)."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, language = i, m.group(1)
        i += 1
        body = []
        while not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        before = SCHEMA_COMMENT.match(lines[start - 1]) if start else None
        found.append((start + 1, language, "\n".join(body), before.group(1) if before else None))
        i += 1
    return found


def json_blocks() -> list[tuple[int, str, str | None]]:
    text = SPEC.read_text(encoding="utf-8")
    return [(line, body, schema) for line, language, body, schema in blocks(text) if language == "json"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    kept = "".join(
        c for c in text if c in " -" or unicodedata.category(c)[0] in "LN"
    )
    return kept.replace(" ", "-")


def headings(text: str) -> list[str]:
    in_fence = False
    found = []
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := HEADING.match(line)):
            found.append(m.group(2))
    return found


def test_spec_has_json_examples() -> None:
    assert len(json_blocks()) >= 8


@pytest.mark.parametrize("block", json_blocks(), ids=lambda b: f"SPEC.md:{b[0]}")
def test_json_block_validates_against_named_schema(block: tuple[int, str, str | None]) -> None:
    line, body, schema = block
    assert schema is not None, f"SPEC.md:{line}: a json block needs <!-- schema: X.schema.json --> before it"
    assert schema in all_schemas(), f"SPEC.md:{line}: no schema/{schema}"
    errors = [e.message for e in validator(schema).iter_errors(json.loads(body))]
    assert errors == [], f"SPEC.md:{line}"


def test_every_schema_comment_precedes_a_json_block(spec_text: str) -> None:
    lines = spec_text.splitlines()
    for i, line in enumerate(lines):
        if SCHEMA_COMMENT.match(line):
            assert lines[i + 1] == "```json", f"SPEC.md:{i + 1}: schema comment without a json block"


def test_spec_shows_every_kind_of_example() -> None:
    hashes: list[dict[str, Any]] = [
        json.loads(body) for _, body, schema in json_blocks() if schema == "task.schema.json"
    ]
    kinds = {(h.get("state", "pending"), h.get("result")) for h in hashes}
    assert {
        ("pending", None),
        ("executing", None),
        ("finished", "successful"),
        ("finished", "failed"),
    } <= kinds
    named = {schema for _, _, schema in json_blocks()}
    assert {"args.schema.json", "worker.schema.json", "rejected.schema.json"} <= named


def test_spec_names_every_code(spec_text: str, protocol: dict[str, Any]) -> None:
    for code in [*protocol["error-codes"], *protocol["reject-codes"], *protocol["outcomes"]]:
        assert f"| `{code}` |" in spec_text, f"{code} has no row in a SPEC.md table"


def test_spec_names_every_state_and_field(spec_text: str, protocol: dict[str, Any]) -> None:
    for name in [*protocol["states"], *protocol["fields"]]:
        assert f"`{name}`" in spec_text, name
    for field in protocol["fields"]:
        assert f"| `{field}` |" in spec_text, f"field {field} has no row in the field table"


def test_spec_names_every_key_template(spec_text: str, protocol: dict[str, Any]) -> None:
    for template in protocol["keys"].values():
        assert f"| `{template}` |" in spec_text, f"{template} has no row in the key table"


def test_spec_names_every_script(spec_text: str, protocol: dict[str, Any]) -> None:
    for name in protocol["scripts"]:
        assert f"`{name}.lua`" in spec_text
        assert f"<sha1 of {name}.lua>" in spec_text, f"{name}.lua has no exact command line"


def test_spec_names_every_lua_file(spec_text: str, protocol: dict[str, Any]) -> None:
    for path in LUA_DIR.glob("*.lua"):
        assert f"`{path.name}`" in spec_text
        assert path.stem in protocol["scripts"]


def test_spec_states_defaults(spec_text: str, protocol: dict[str, Any]) -> None:
    for name, value in protocol["defaults"].items():
        assert f"| `{name}` | {value} |" in spec_text, name


def test_seed_transcript_verbatim(spec_text: str) -> None:
    lines = spec_text.splitlines()
    for expected in SEED_TRANSCRIPT:
        assert expected in lines, f"missing line: {expected}"


def test_seed_transcript_in_order(spec_text: str) -> None:
    section = spec_text.split("## 13. Quick start from redis-cli", 1)[1]
    positions = [section.index(line) for line in SEED_TRANSCRIPT]
    assert positions[:4] == sorted(positions[:4])


def test_headings_are_numbered_and_unique(spec_text: str) -> None:
    found = headings(spec_text)
    slugs = [slug(h) for h in found]
    assert len(slugs) == len(set(slugs)), "two headings share an anchor"
    for heading in found[2:]:
        assert re.match(r"^\d+(\.\d+)?\.? ", heading), f"unnumbered heading: {heading}"


def test_slug_examples() -> None:
    assert slug("5.2 Claim") == "52-claim"
    assert slug("5. Operations") == "5-operations"
    assert slug("9.2 Leases, heartbeats and the reaper") == "92-leases-heartbeats-and-the-reaper"


def test_anchor_links_resolve(spec_text: str) -> None:
    anchors = {slug(h) for h in headings(spec_text)}
    for target in re.findall(r"\]\(#([^)]+)\)", spec_text):
        assert target in anchors, f"SPEC.md links to missing #{target}"
    primer = PRIMER.read_text(encoding="utf-8")
    for target in re.findall(r"SPEC\.md#([\w-]+)", primer):
        assert target in anchors, f"docs/PRIMER.md links to missing SPEC.md#{target}"


def test_anchor_index_lists_every_section(spec_text: str) -> None:
    listed = set(re.findall(r"^\| \[#([\w-]+)\]", spec_text, flags=re.M))
    numbered = {slug(h) for h in headings(spec_text) if re.match(r"^\d", h)}
    assert listed == numbered
