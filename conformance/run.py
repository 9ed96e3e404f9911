#!/usr/bin/env python3
"""Run the dothis conformance cases against one or more implementations.

    .venv/bin/python conformance/run.py                      # python and redis-cli columns
    .venv/bin/python conformance/run.py --impl python --impl node --markdown report.md
    .venv/bin/python conformance/run.py --impl python --impl node --impl redis-cli --matrix
    .venv/bin/python conformance/run.py --impl python --impl node --impl redis-cli --cluster   # on a Redis Cluster
    .venv/bin/python conformance/run.py --check-only         # case files, SPEC.md anchors, coverage

Exit status: 0 when every applicable case passed, 1 on any failure, 2 on malformed cases.
The code is the package runner/ (installed as dothis_conformance by `pip install ./conformance`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner.cli import repo_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(repo_main())
