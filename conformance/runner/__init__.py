"""Library behind conformance/run.py: case files, matchers, harness processes, step execution."""
