"""Normalise notebooks for commit: what JupyterLab writes when it opens them, without outputs.

Used by the pre-commit hook (``make hooks``) and runnable by hand::

    .venv/bin/python .githooks/normalize_notebooks.py notebooks/*.ipynb      # rewrite in place
    .venv/bin/python .githooks/normalize_notebooks.py --check notebooks/*.ipynb   # exit 1 if any would change

What it does to each notebook:

* outputs, execution counts and nbstripout's default metadata keys stripped with nbstripout's ``strip_output``
  (cell ids kept, so diffs stay small);
* the kernelspec set to ``python3`` ("Python 3 (ipykernel)"), whichever kernel was chosen in Lab ("Python
  (workbench)" is the same interpreter): papermill, which gets no kernel name from the runner, then starts the
  runner's own interpreter;
* ``language_info`` set to what this environment's kernel reports (what Lab writes when it opens the notebook), so
  opening a committed notebook does not mark it modified.

The file is written the way Jupyter writes notebooks (nbformat: one-space indent, sorted keys, final newline).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# nbstripout's own defaults (what its command line strips besides outputs and counts)
EXTRA_KEYS = ["metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
              "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
              "cell.metadata.scrolled"]


def language_info() -> dict:
    """What an ipykernel of this interpreter answers in ``kernel_info`` (``IPythonKernel.language_info``, spelled
    out here because importing ipykernel costs seconds; tests/test_notebooks_clean.py checks they agree)."""
    major = sys.version_info[0]
    return {"codemirror_mode": {"name": "ipython", "version": major}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": f"ipython{major}", "version": sys.version.split()[0]}


def normalized(text: str) -> str:
    """The normalised text of a notebook's text."""
    import nbformat
    from nbstripout import strip_output

    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nb = strip_output(nb, keep_output=False, keep_count=False, keep_id=True, extra_keys=EXTRA_KEYS)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = language_info()
    return nbformat.writes(nb, version=nbformat.NO_CONVERT) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any notebook would change")
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args(argv)
    changed = []
    for path in args.notebooks:
        before = path.read_text(encoding="utf-8")
        after = normalized(before)
        if after != before:
            changed.append(path)
            if not args.check:
                path.write_text(after, encoding="utf-8")
    for p in changed:
        print(f"{'would normalise' if args.check else 'normalised'} {p}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
