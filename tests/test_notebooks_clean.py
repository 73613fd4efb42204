"""Committed notebooks are clean: no outputs, no execution counts (they are run into run folders, never in place),
the ``python3`` kernelspec (papermill, which gets no kernel name from the runner, then starts the runner's own
interpreter) and a ``language_info`` for Python.

What is checked is what git commits: the staged (index) copy of each notebook when the checkout is a git
repository, else the file. Saving a notebook in JupyterLab (outputs, or the "Python (workbench)" kernel) therefore
never breaks this test; the pre-commit hook (``make hooks``, run by ``make setup``) normalises a notebook when it
is committed, and these tests check that what the hook produces passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NORMALIZE = ROOT / ".githooks" / "normalize_notebooks.py"


def committed_text(path: Path) -> str:
    """The notebook as git would commit it (its staged copy), or the file outside a git checkout."""
    if shutil.which("git") and (ROOT / ".git").exists():
        rel = path.relative_to(ROOT).as_posix()
        out = subprocess.run(["git", "-C", str(ROOT), "show", f":{rel}"], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout
    return path.read_text(encoding="utf-8")


def check_clean(nb: dict, name: str) -> None:
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{name}: code cells {dirty} carry outputs or execution counts; install the hook "
                       "(`make hooks`) and commit again, or run .githooks/normalize_notebooks.py on it")
    assert not any(c.get("attachments") for c in nb["cells"]), f"{name}: cell attachments"
    assert "widgets" not in nb.get("metadata", {}), f"{name}: saved widget state"


def check_kernelspec(nb: dict, name: str) -> None:
    spec = nb["metadata"].get("kernelspec") or {}
    assert spec.get("name") == "python3" and spec.get("language") == "python", (name, spec)
    assert (nb["metadata"].get("language_info") or {}).get("name") == "python", name


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["01_discovery.ipynb", "02_prototype.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs_or_execution_counts(path):
    check_clean(json.loads(committed_text(path)), path.name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_names_the_python3_kernelspec(path):
    nb = json.loads(committed_text(path))
    check_kernelspec(nb, path.name)
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5, "cell ids need nbformat 4.5"


def _dirty_copy(tmp_path: Path, kernel: str = "workbench") -> Path:
    """A notebook as JupyterLab saves it after running cells with the "Python (workbench)" kernel."""
    nb = json.loads(NOTEBOOKS[0].read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    code["metadata"]["scrolled"] = True
    nb["metadata"]["kernelspec"] = {"display_name": "Python (workbench)", "language": "python", "name": kernel}
    nb["metadata"]["language_info"] = {"name": "python", "version": "0.0.0"}
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(nb, indent=1))
    return dirty


def test_the_check_catches_a_dirty_notebook(tmp_path):
    nb = json.loads(_dirty_copy(tmp_path).read_text())
    with pytest.raises(AssertionError, match="carry outputs"):
        check_clean(nb, "dirty.ipynb")
    with pytest.raises(AssertionError):
        check_kernelspec(nb, "dirty.ipynb")


def _normalizer():
    import importlib.util

    spec = importlib.util.spec_from_file_location("normalize_notebooks", NORMALIZE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_what_the_hook_produces_passes_and_is_what_lab_writes(tmp_path):
    """Normalising a Lab-saved notebook (outputs, the workbench kernel) gives a clean python3 notebook whose
    metadata is what JupyterLab writes on open (kernelspec and this interpreter's language_info), and
    normalising again changes nothing."""
    dirty = _dirty_copy(tmp_path)
    norm = _normalizer()
    assert norm.main(["--check", str(dirty)]) == 1
    assert norm.main([str(dirty)]) == 0
    nb = json.loads(dirty.read_text())
    check_clean(nb, "dirty.ipynb")
    check_kernelspec(nb, "dirty.ipynb")
    assert nb["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    from ipykernel.ipkernel import IPythonKernel

    assert nb["metadata"]["language_info"] == json.loads(json.dumps(IPythonKernel.language_info))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "scrolled" not in code["metadata"] and code["id"]  # nbstripout's cleanup, cell ids kept
    before = dirty.read_text()
    assert before.endswith("}\n") and before.startswith('{\n "cells": [\n')  # nbformat's layout, as Lab saves
    norm.main([str(dirty)])
    assert dirty.read_text() == before
    assert norm.main(["--check", str(dirty)]) == 0


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_the_pre_commit_hook_normalises_what_is_committed(tmp_path):
    """End to end in a scratch repository: commit a Lab-saved notebook with the hook installed as `make hooks`
    installs it; the committed blob is clean and the hook's own check passes on it."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / ".githooks", repo / ".githooks")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "bin").mkdir()
    wrapper = repo / ".venv" / "bin" / "python"  # the hook runs the checkout's .venv/bin/python
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    shutil.copy(_dirty_copy(tmp_path), repo / "notebooks" / "a.ipynb")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)

    git("init", "-q")
    git("config", "core.hooksPath", ".githooks")
    git("add", "notebooks/a.ipynb")
    git("commit", "-q", "-m", "notebook")
    nb = json.loads(git("show", "HEAD:notebooks/a.ipynb").stdout)
    check_clean(nb, "a.ipynb")
    check_kernelspec(nb, "a.ipynb")
    assert "a.ipynb" not in git("status", "--porcelain").stdout  # the working copy was normalised and re-staged
