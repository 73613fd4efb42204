"""Committed notebooks are clean: no outputs, no execution counts (they are run into run folders, never in place),
and they name the ``python3`` kernelspec, so papermill (which gets no kernel name from the runner) starts the
runner's own interpreter. ``make lab`` registers the same environment as "Python (workbench)" for people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["01_discovery.ipynb", "02_prototype.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs_or_execution_counts(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them "
                       "(JupyterLab: Edit > Clear Outputs of All Cells, then save) before committing")
    assert not any(c.get("attachments") for c in nb["cells"]), f"{path.name}: cell attachments"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_names_the_python3_kernelspec(path):
    spec = json.loads(path.read_text())["metadata"].get("kernelspec") or {}
    assert spec.get("name") == "python3" and spec.get("language") == "python", spec


def test_the_check_catches_a_dirty_notebook(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="carry outputs"):
        test_notebook_has_no_outputs_or_execution_counts(dirty)
