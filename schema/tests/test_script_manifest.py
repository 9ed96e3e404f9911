"""schema/scripts.json, the manifest of the scripts, against the Lua headers, SPEC.md and protocol.json."""

from __future__ import annotations

import re
from typing import Any

import pytest
from schema_support import LUA_DIR, REPO, SCHEMA_DIR, load_json, protocol, spec_text, validator  # noqa: F401 - fixtures

MANIFEST = load_json(SCHEMA_DIR / "scripts.json")
SCRIPTS = {script["name"]: script for script in MANIFEST["scripts"]}
HEADER_SLOT = re.compile(r"^-- (KEYS|ARGV)\[([^\]]+)\]\s+(.*)$")
REPLY = re.compile(r"^--\s+(?:Returns(?: one of)?:)?\s*(-?\d+|'[a-z-]+'|\{'[a-z-]+')(?:\s|,|\}|$)")
TEMPLATE = re.compile(r"<queue>:[a-z-]+(?::<[a-z]+>)?")


def placeholders(template: str) -> str:
    """A key template with its placeholders blanked: <queue>:task:<child> -> <>:task:<>."""
    return re.sub(r"<[a-z]+>", "<>", template)


def header(name: str) -> list[str]:
    """The leading comment block of lua/<name>.lua, up to its first line of code or include block."""
    lines = []
    for line in (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8").splitlines():
        if not line.startswith("--") or line.startswith("-- >>> "):
            break
        lines.append(line)
    return lines


def slots(name: str, kind: str) -> list[tuple[str, str]]:
    """(index text, the rest of the line) of every KEYS[...] or ARGV[...] the header declares, in order."""
    found = []
    lines = header(name)
    for i, line in enumerate(lines):
        m = HEADER_SLOT.match(line)
        if m and m.group(1) == kind:
            # a declaration may continue on lines indented past the slot
            rest = [m.group(3)]
            for more in lines[i + 1:]:
                if HEADER_SLOT.match(more) or not more.startswith("--    "):
                    break
                rest.append(more[2:].strip())
            found.append((m.group(2), " ".join(rest)))
    return found


def header_replies(name: str) -> list[int | str]:
    lines = header(name)
    start = next(i for i, line in enumerate(lines) if "Returns" in line)
    values: list[int | str] = []
    for line in lines[start:]:
        if re.match(r"^-- (Events|Plain commands|Owning means|claims is)", line):
            break
        m = REPLY.match(line)
        if m:
            token = m.group(1).lstrip("{").strip("'")
            values.append(int(token) if re.fullmatch(r"-?\d+", token) else token)
    return values


def header_publishes_when(name: str) -> list[int | str] | None:
    for line in header(name):
        if line.startswith("-- Events:"):
            if "PUBLISH" not in line:
                return None
            tail = line.split("returns", 1)[1]
            return [int(t) if re.fullmatch(r"-?\d+", t) else t.strip("'")
                    for t in re.findall(r"-?\d+|'[a-z-]+'", tail)]
    return None


def test_manifest_validates() -> None:
    errors = [e.message for e in validator("scripts.schema.json").iter_errors(MANIFEST)]
    assert errors == []


def test_manifest_points_at_its_schema() -> None:
    assert (SCHEMA_DIR / MANIFEST["$schema"]).resolve() == SCHEMA_DIR / "scripts.schema.json"


def test_manifest_lists_the_scripts_of_protocol_json(protocol: dict[str, Any]) -> None:
    assert [s["name"] for s in MANIFEST["scripts"]] == protocol["scripts"]
    for script in MANIFEST["scripts"]:
        assert script["file"] == f"lua/{script['name']}.lua"
        assert (REPO / script["file"]).is_file()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_keys_use_protocol_templates(name: str, protocol: dict[str, Any]) -> None:
    for key in SCRIPTS[name]["keys"]:
        assert key["name"] in protocol["keys"], f"{name}: {key['name']} is not a key of protocol.json"
        assert key["template"] == protocol["keys"][key["name"]], f"{name}: {key['name']}"


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_optional_and_repeated_come_last(name: str) -> None:
    for kind in ("keys", "args"):
        entries = SCRIPTS[name][kind]
        tail = [bool(e.get("optional") or e.get("repeated")) for e in entries]
        assert tail == sorted(tail), f"{name} {kind}: an optional or repeated entry precedes a plain one"
        optional = [i for i, e in enumerate(entries) if e.get("optional")]
        repeated = [i for i, e in enumerate(entries) if e.get("repeated")]
        if kind == "args":
            assert not (optional and repeated), f"{name} args: both optional and repeated"
        elif optional and repeated:  # an optional key after the group: an argument counts the groups
            assert min(optional) > max(repeated), f"{name} keys: an optional key inside the repeated group"
            assert any("count" in a["name"] for a in SCRIPTS[name]["args"]), f"{name}: no argument counts the groups"


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_keys_equal_the_lua_header(name: str) -> None:
    declared = slots(name, "KEYS")
    fixed = [(int(i), rest) for i, rest in declared if i.isdigit()]
    tails = [rest for i, rest in declared if not i.isdigit()]
    keys = SCRIPTS[name]["keys"]
    repeated = [k for k in keys if k.get("repeated")]
    after = [k for k in keys[keys.index(repeated[-1]) + 1:]] if repeated else []
    single = [k for k in keys if not k.get("repeated") and k not in after]
    assert [i for i, _ in fixed] == list(range(1, len(single) + 1)), f"{name}: KEYS count or order"
    for (index, rest), key in zip(fixed, single, strict=True):
        templates = TEMPLATE.findall(rest)
        assert templates, f"{name}: KEYS[{index}] names no key template"
        assert placeholders(templates[0]) == placeholders(key["template"]), f"{name}: KEYS[{index}]"
        assert ("optional" in rest) == bool(key.get("optional")), f"{name}: KEYS[{index}] optional"
    if repeated:
        assert len(tails) == 1 + len(after), f"{name}: repeated keys need one KEYS[n..] line, then one per key after"
        assert [placeholders(t) for t in TEMPLATE.findall(tails[0])] == [placeholders(k["template"]) for k in repeated]
        for rest, key in zip(tails[1:], after, strict=True):
            assert placeholders(TEMPLATE.findall(rest)[0]) == placeholders(key["template"]), name
            assert ("optional" in rest) == bool(key.get("optional")), f"{name}: {key['name']} optional"
    else:
        assert tails == [], f"{name}: the header has a KEYS[n..] line the manifest lacks"


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_args_equal_the_lua_header(name: str) -> None:
    declared = slots(name, "ARGV")
    args = SCRIPTS[name]["args"]
    assert len(declared) == len(args), f"{name}: {len(declared)} ARGV declared, {len(args)} in the manifest"
    for position, ((index, rest), arg) in enumerate(zip(declared, args, strict=True), 1):
        if arg.get("repeated"):
            assert ".." in index, f"{name}: ARGV[{index}] is {arg['name']}, which is repeated"
        else:
            assert index == str(position), f"{name}: ARGV[{index}] at position {position} ({arg['name']})"
        assert ("optional" in rest) == bool(arg.get("optional")), f"{name}: ARGV[{index}] optional"


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_replies_equal_the_lua_header(name: str) -> None:
    assert header_replies(name) == [r["value"] for r in SCRIPTS[name]["replies"]]


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_publishes_equal_the_lua_script(name: str) -> None:
    script = SCRIPTS[name]
    text = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    publishes = script["publishes"]
    assert (publishes is not None) == ("'PUBLISH'" in text), name
    assert header_publishes_when(name) == (publishes["when"] if publishes else None), name
    if publishes:
        assert publishes["channel"] == ("progress" if name == "progress" else "results")
        replies = [r["value"] for r in script["replies"]]
        assert set(publishes["when"]) <= set(replies), name


def section_10_rows(spec_text: str) -> dict[str, tuple[list[str], list[str]]]:
    section = spec_text.split("\n## 10. Scripts\n", 1)[1].split("\n## 11.", 1)[0]
    rows = {}
    for m in re.finditer(r"^\| `([a-z-]+)\.lua` \| ([^|]+) \| ([^|]+) \|$", section, flags=re.M):
        rows[m.group(1)] = (re.findall(r"\d+\.\d+", m.group(2)), re.findall(r"`([a-z-]+)`", m.group(3)))
    return rows


def test_spec_section_10_table_equals_the_manifest(spec_text: str) -> None:
    rows = section_10_rows(spec_text)
    assert list(rows) == list(SCRIPTS)
    for name, (sections, keys) in rows.items():
        assert sections == SCRIPTS[name]["spec"], f"SPEC.md section 10, {name}.lua: sections"
        assert keys == [k["name"] for k in SCRIPTS[name]["keys"]], f"SPEC.md section 10, {name}.lua: keys"


def test_spec_sections_exist(spec_text: str) -> None:
    for script in MANIFEST["scripts"]:
        for number in script["spec"]:
            assert re.search(rf"^### {re.escape(number)} ", spec_text, flags=re.M), f"{script['name']}: no section {number}"


def test_spec_counts_the_scripts(spec_text: str) -> None:
    words = {11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen"}
    assert f"The {words[len(SCRIPTS)]} scripts are the files" in spec_text


def test_header_parser_sees_every_script() -> None:
    """Guards the parser itself: the finish header has 6 KEYS, 11 ARGV slots and 4 replies."""
    assert len(slots("finish", "KEYS")) == 6
    assert len(slots("finish", "ARGV")) == 11
    assert header_replies("finish") == [1, 2, 0, -1]
    assert header_replies("start")[:2] == ["ok", "too-large"]
    assert header_publishes_when("recover") == ["failed"]
