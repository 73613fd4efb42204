"""Builds the tiny fixture notebooks used by tests/test_runs.py (run by the tests themselves)."""

from __future__ import annotations

from pathlib import Path

import nbformat

PARAMS = '''brief_path: str = ""  # problem brief
run_dir: str = ""  # run folder
seed: int = 42  # seed
sample_rows: int = 0  # rows per split'''

BODIES = {
    "failing": "x = 1\ny = x / 0  # this cell fails",
    "dead_kernel": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "hang": "import time\ntime.sleep(600)",
}


def write(kind: str, dest: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('starting')"),
        nbformat.v4.new_code_cell(BODIES[kind]),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest
