"""Every fenced block of README.md (and of python/README.md and node-client/README.md) runs as
written: the project's rule.

The blocks of a README run in order, in a temporary directory, against a private redis-server
this test starts on a free loopback port. The only change made to their text: `127.0.0.1:6379`
becomes `127.0.0.1:<port>` and `redis-cli` becomes `redis-cli -p <port>`. DOTHIS_REDIS_URL names
the private server (code that gives no URL, `Queue("media")`, `new Queue('dothis')`, uses it) and
PATH starts with the venv's bin, so `dothis` resolves.

How each kind of block runs:

- ```python: a script, run by the venv's Python. A block whose first line is `# NAME.py` is a
  module a later block uses: it is written to NAME.py. A block that defines `test_` functions is
  a test file: pytest runs it (the dothis.testing plugin is installed by entry point).
- ```bash and ```sh: line by line, through bash. A `dothis worker` without `--burst` is what a
  person leaves running in a terminal: here it runs in the background until the end of its
  section (its `## ` heading), then gets SIGTERM (SIGKILL after 10 s). Comment lines right after
  a command that has no comment of its own are its output (`# 1) "successful"`): the command is
  repeated until it prints that, for up to 15 s (a person types it once the worker ran the task).
  Commands that have tests of their own are not rerun: NOT_RERUN says which and why.
- ```js: run by node, as a .cjs file when it uses require(), else as a .mjs file (an ES module).
  `dothis` resolves through node_modules/dothis, a link to the repository's node-client: made by
  the README's own `npm install ./node-client` (run for real: ./node-client is a link to the
  repository's), or by this test when a block comes before that line.
- ```text: sample output, not code. A worker log sample must match the lines a worker writes for
  the same tasks (python/src/dothis/worker/logs.py); a `$ dothis ...` transcript is run and its
  tables must have the sample's headers and the sample's queue, language and functions cells;
  any other text block is skipped.

A print() or console.log() whose line ends with a comment must print what the comment says.
WORKERS lists the workers this test starts itself, for blocks that wait on a function no worker
of the README serves. Any other info string fails the test, so a new kind of snippet gets a way
to run before it is merged.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
NODE_CLIENT = ROOT / "node-client"
READMES = ["README.md", "python/README.md", "node-client/README.md"]
KINDS = {"python", "bash", "sh", "js", "text"}
Done = subprocess.CompletedProcess[str]


def check_pip_install() -> None:
    """`pip install ./python` is how scripts/setup.sh makes the venv these tests run in."""
    assert (ROOT / "python" / "pyproject.toml").is_file()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r'pip install .*"\$ROOT/python\[dev\]"', setup), "setup.sh installs ./python"


SETUP_NODE = "scripts/setup.sh installs the Node client's dependencies (npm ci) and builds dist/"
NODE_CI = "scripts/test.sh's Node step runs it (npm run ci: build, typecheck, lint, node --test)"
# Commands not rerun here, with the reason (and a quick check instead, for some).
NOT_RERUN: dict[str, tuple[str, Callable[[], None] | None]] = {
    "bash scripts/demo.sh": ("tests/test_demo.py runs it", None),
    "bash scripts/test.sh": ("it is the CI run itself: it runs this test", None),
    "bash scripts/chaos.sh": ("scripts/test.sh runs the chaos suite's bounded group", None),
    ".venv/bin/python bench/run.py": ("scripts/test.sh runs its smoke run, --quick", None),
    "docker compose up --build": ("tests/test_repository.py checks docker-compose.yml", None),
    "pip install ./python": ("scripts/setup.sh makes the venv that way", check_pip_install),
    "redis-server &": ("the test's private redis-server stands in (6379 is a shared one)", None),
    # node-client/README.md's Development section, run in node-client/:
    "npm install": (SETUP_NODE, None),
    "npm run build": (SETUP_NODE, None),
    "npm run typecheck": (NODE_CI, None),
    "npm run lint": (NODE_CI, None),
    "npm test": (NODE_CI, None),
    "npm run ci": (NODE_CI, None),
    "npm run bench": ("a benchmark (timings, not a check), like bench/run.py", None),
}

# Workers this test starts for a section, (README, section) -> `dothis worker` arguments: the
# README's own workers serve every other block that waits on a task.
WORKERS: dict[tuple[str, str], list[list[str]]] = {
    # add.delay(3, 4).wait(10) waits on add, on queue math: dothis.examples's add is that function.
    ("README.md", "What else it does"): [["--queue", "math", "dothis.examples"]],
    # The worker of the log and `dothis info` samples: dothis.examples on media.
    ("README.md", "Seeing and steering it"): [["--queue", "media", "dothis.examples"]],
}

# Arguments for the example functions a log sample shows (fail's message comes from the sample).
EXAMPLE_ARGS = {"add": {"a": 2, "b": 3}, "echo": {"text": "ooh yeeah"}, "sleep": {"seconds": 0}}
STABLE_COLUMNS = {"queue", "language", "functions"}  # the cells of `dothis info` a sample fixes


@dataclass
class Block:
    readme: str
    line: int  # of the opening fence
    section: str  # the `## ` heading above it ("" before the first)
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.readme}:{self.line}"


def blocks(readme: str) -> list[Block]:
    found: list[Block] = []
    section, opened, kind, body = "", 0, "", list[str]()
    for number, line in enumerate((ROOT / readme).read_text().splitlines(), 1):
        if opened:
            if line.strip() == "```":
                found.append(Block(readme, opened, section, kind, "\n".join(body) + "\n"))
                opened = 0
            else:
                body.append(line)
        elif line.startswith("```"):
            opened, kind, body = number, line[3:].strip(), []
        elif line.startswith("## "):
            section = line[3:].strip()
    assert not opened, f"{readme}:{opened}: a fence that is never closed"
    return found


def test_every_block_is_of_a_kind_this_test_runs() -> None:
    unknown = [f"{b.where}: ```{b.kind}" for r in READMES for b in blocks(r) if b.kind not in KINDS]
    assert unknown == [], f"teach tests/test_readme.py to run these blocks: {unknown}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to its process group (its own session) after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def redis_port() -> Iterator[int]:
    for _ in range(3):
        port = free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            stop(server)
            continue  # the port was taken in between: another one
        try:
            yield port
        finally:
            client.close()
            stop(server)
        return
    pytest.fail("could not start a private redis-server")


@pytest.fixture(scope="session")
def node_client_built() -> None:
    """The README's `npm install ./node-client` links a built node-client: build it if needed."""
    dist = NODE_CLIENT / "dist"
    if not ((dist / "esm" / "index.js").is_file() and (dist / "cjs" / "index.js").is_file()):
        subprocess.run(["npm", "run", "--silent", "build"], cwd=NODE_CLIENT, check=True,
                       timeout=180)  # fmt: skip


def split_comment(line: str) -> tuple[str, str | None]:
    """A shell line's command and its trailing comment (None without one)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip(), line[index + 1 :].strip()
    return line.strip(), None


def redis_cli_lines(expected: list[str]) -> list[str]:
    """What redis-cli prints to a pipe for the terminal output a README shows: `1) "a\\"b"`
    is printed as `a"b` when stdout is not a terminal."""
    lines = []
    for shown in expected:
        line = re.sub(r"^\d+\) ", "", shown)
        lines.append(json.loads(line) if line.startswith('"') and line.endswith('"') else line)
    return lines


def printed_comments(block: Block) -> list[str | None]:
    """For each print()/console.log() line of a block, its trailing comment (None without)."""
    if block.kind == "python":
        comments = {
            token.start[0]: token.string.lstrip("#").strip()
            for token in tokenize.generate_tokens(io.StringIO(block.text).readline)
            if token.type == tokenize.COMMENT
        }
        lines = block.text.splitlines()
        return [comments.get(n) for n, line in enumerate(lines, 1) if "print(" in line]
    found = []
    for line in block.text.splitlines():
        if "console.log(" in line:
            comment = re.search(r"\);?\s*//\s?(.*)$", line)
            found.append(comment.group(1).strip() if comment else None)
    return found


def check_printed(block: Block, stdout: str) -> None:
    comments = [comment for comment in printed_comments(block) if comment is not None]
    if not comments or len(comments) != len(printed_comments(block)):
        return
    printed = stdout.splitlines()
    assert len(printed) == len(comments), f"{block.where} printed {stdout!r}, not {comments}"
    for out, comment in zip(printed, comments, strict=True):
        said = comment == out or (comment.startswith(out) and not comment[len(out)].isalnum())
        assert said, f"{block.where} printed {out!r} where its comment says {comment!r}"


def sample_regex(line: str) -> str:
    """A log line of a sample as a regex: any time, task id (shortened `6f70...7b96` in the
    sample) and duration."""
    holes = [
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"),
        (r"[0-9a-f]{4}\.\.\.[0-9a-f]{4}", r"[0-9a-f][0-9a-f-]+[0-9a-f]"),
        (r"\d+\.\d+", r"\d+\.\d+"),
    ]
    parts, at = [], 0
    for hole in re.finditer("|".join(f"({pattern})" for pattern, _ in holes), line):
        parts += [re.escape(line[at : hole.start()]), holes[(hole.lastindex or 1) - 1][1]]
        at = hole.end()
    return "".join(parts) + re.escape(line[at:])


def tables(output: str) -> list[tuple[list[str], list[list[str]]]]:
    """The tables `dothis info` prints: (header cells, rows of cells)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    for printed in output.splitlines():
        line = printed.strip()
        if line.startswith("┃"):
            found.append(([cell.strip() for cell in line.strip("┃").split("┃")], []))
        elif line.startswith("│") and found:
            found[-1][1].append([cell.strip() for cell in line.strip("│").split("│")])
    return found


@dataclass
class Session:
    """Runs one README's blocks, in order, in ``tmp`` against the redis-server on ``port``."""

    readme: str
    tmp: Path
    port: int
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_logs: dict[str, Path] = field(default_factory=dict)  # queue -> log of its worker
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("DOTHIS_")}  # fmt: skip
        self.env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            DOTHIS_REDIS_URL=f"redis://127.0.0.1:{self.port}/0", npm_config_audit="false",
            npm_config_fund="false", npm_config_update_notifier="false",
        )  # fmt: skip
        self.redis = redis.Redis(port=self.port)
        (self.tmp / "node-client").symlink_to(NODE_CLIENT)  # for `npm install ./node-client`

    def rewrite(self, text: str) -> str:
        text = text.replace("127.0.0.1:6379", f"127.0.0.1:{self.port}")
        return re.sub(r"(?<![\w-])redis-cli(?= )", f"redis-cli -p {self.port}", text)

    def run(self, command: list[str], env: dict[str, str] | None = None) -> Done:
        return subprocess.run(command, cwd=self.tmp, env=env or self.env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    def run_ok(self, command: list[str], block: Block) -> str:
        done = self.run(command)
        assert done.returncode == 0, f"{block.where}: {command} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    # -- blocks, by kind

    def python(self, block: Block) -> None:
        text = self.rewrite(block.text)
        module = re.match(r"# (\w+\.py)\n", text)
        if module:
            (self.tmp / module.group(1)).write_text(text)
            self.run_ok([str(PYTHON), "-m", "py_compile", module.group(1)], block)
        elif re.search(r"^def test_\w+\(", text, re.MULTILINE):
            path = self.tmp / f"test_readme_block_{block.line}.py"
            path.write_text(text)
            out = self.run_ok([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               path.name], block)  # fmt: skip
            assert re.search(r"\b\d+ passed\b", out) and "failed" not in out, out
        else:
            path = self.tmp / f"block_{block.line}.py"
            path.write_text(text)
            check_printed(block, self.run_ok([str(PYTHON), path.name], block))

    def js(self, block: Block) -> None:
        link = self.tmp / "node_modules" / "dothis"
        if not link.exists():
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(NODE_CLIENT)
        suffix = ".cjs" if re.search(r"\brequire\(", block.text) else ".mjs"
        path = self.tmp / f"block_{block.line}{suffix}"
        path.write_text(self.rewrite(block.text))
        check_printed(block, self.run_ok(["node", path.name], block))

    def bash(self, block: Block) -> None:
        lines = self.rewrite(block.text).splitlines()
        for index, line in enumerate(lines):
            command, comment = split_comment(line)
            if not command:
                continue
            expected: list[str] = []
            if comment is None:  # the comment lines right after it are its output
                for after in lines[index + 1 :]:
                    if not after.startswith("#"):
                        break
                    expected.append(after[1:].strip())
            self.command(block, command, expected)

    sh = bash

    def command(self, block: Block, command: str, expected: list[str]) -> None:
        if command in NOT_RERUN:
            reason, check = NOT_RERUN[command]
            if check:
                check()
            self.skipped.append(f"{block.where} {command}: {reason}")
            return
        words = shlex.split(command)
        if words[:2] == ["dothis", "worker"] and "--burst" not in words:
            self.start_worker(words[2:], block)
            return
        deadline = time.monotonic() + 15
        while True:
            out = self.run_ok(["bash", "-o", "pipefail", "-c", command], block)
            if not expected or out.splitlines() == redis_cli_lines(expected):
                return
            assert time.monotonic() < deadline, f"{block.where}: {command} printed {out!r}"
            time.sleep(0.1)

    def text(self, block: Block) -> None:
        lines = block.text.splitlines()
        if any(re.match(r"\S+ \S+ (INFO|WARNING|ERROR) dothis\.tasks: ", x) for x in lines):
            self.check_log_sample(block, lines)
        elif lines and lines[0].startswith("$ dothis "):
            self.check_transcript(block, lines)
        else:
            self.skipped.append(f"{block.where} ```text: sample output this test cannot check")

    # -- workers

    def start_worker(self, args: list[str], block: Block) -> None:
        queues = [args[i + 1] for i, arg in enumerate(args) if arg in ("--queue", "-q")]
        log = self.tmp / f"worker-{len(self.background)}.log"
        with log.open("wb") as out:
            worker = subprocess.Popen([str(VENV_BIN / "dothis"), "worker", *args], cwd=self.tmp,
                                      env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        self.background.append(worker)
        for queue in queues or ["dothis"]:
            self.worker_logs[queue] = log
            deadline = time.monotonic() + 30
            while not any(self.redis.scan_iter(match=f"{queue}:worker:*", count=1000)):
                exited = worker.poll() is not None
                assert not exited, f"{block.where}: the worker exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{block.where}: no worker on {queue} in 30 s"
                time.sleep(0.05)

    def end_section(self) -> None:
        while self.background:
            stop(self.background.pop())
        self.worker_logs.clear()

    # -- samples

    def check_log_sample(self, block: Block, lines: list[str]) -> None:
        """Run the sample's tasks on the section's worker and find the sample's lines in its log."""
        wanted: list[str] = []
        logs: set[Path] = set()
        for line in lines:
            task = re.search(r"dothis\.tasks: task \S+ \((\w+)\) on (\S+): ", line)
            if task:
                function, queue = task.groups()
                args = EXAMPLE_ARGS.get(function, {})
                if message := re.search(r"\(exception: (.*?)\)", line):
                    args = {"message": message.group(1)}  # fail(message) raises it
                self.run([str(VENV_BIN / "dothis"), "enqueue", "--queue", queue, "--args",
                          json.dumps(args), function, "--wait"])  # fmt: skip
                wanted.append(sample_regex(line))
                logs.add(self.worker_logs[queue])
            elif line.strip() and not line.startswith(" "):  # "Traceback ...", "RuntimeError: ..."
                wanted.append(re.escape(line))
        deadline = time.monotonic() + 15
        while True:
            logged = [x for log in sorted(logs) for x in log.read_text().splitlines()]
            missing = [w for w in wanted if not any(re.fullmatch(w, x) for x in logged)]
            if not missing:
                return
            assert time.monotonic() < deadline, (
                f"{block.where}: the worker logs no line like {missing}:\n" + "\n".join(logged)
            )
            time.sleep(0.1)

    def check_transcript(self, block: Block, lines: list[str]) -> None:
        """Run the `$ ` command; its tables have the sample's headers and stable cells."""
        env = {**self.env, "COLUMNS": "250"}  # wide enough that no cell wraps
        done = self.run(shlex.split(self.rewrite(lines[0][2:])), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        real = {tuple(header): rows for header, rows in tables(done.stdout)}
        for header, rows in tables("\n".join(lines[1:])):
            assert tuple(header) in real, f"{block.where}: no table {header} in\n{done.stdout}"
            stable = [i for i, name in enumerate(header) if name in STABLE_COLUMNS]
            have = [[row[i] for i in stable] for row in real[tuple(header)]]
            for row in rows:
                cells = [row[i] for i in stable]
                assert cells in have, f"{block.where}: {cells} is stale; now:\n{done.stdout}"


@pytest.mark.parametrize("readme", READMES)
def test_readme_blocks_run(readme: str, redis_port: int, tmp_path: Path,
                           node_client_built: None) -> None:  # fmt: skip
    session = Session(readme, tmp_path, redis_port)
    section: str | None = None
    try:
        for block in blocks(readme):
            if block.section != section:
                session.end_section()
                section = block.section
                for args in WORKERS.get((readme, section), []):
                    session.start_worker(args, block)
            assert block.kind in KINDS, f"{block.where}: no way to run a ```{block.kind} block"
            getattr(session, block.kind)(block)
    finally:
        session.end_section()
        session.redis.close()
    print("\n".join(["not rerun:", *session.skipped]))


def test_worker_sections_exist() -> None:
    """WORKERS names sections that still exist."""
    for readme, section in WORKERS:
        assert section in {b.section for b in blocks(readme)}, (readme, section)
