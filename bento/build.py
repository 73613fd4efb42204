"""Build a deployable Bento: the service, the ``workbench`` code it imports, and the production model.

``bentoml build`` run in this folder packs ``service.py`` alone, so that Bento only runs where ``workbench`` is
installed (as in the project's ``.venv``). This script stages a build context -- ``service.py``,
``bentofile.yaml`` and a copy of ``src/workbench`` -- and runs ``bentoml build`` there: the Bento's ``src/``
then holds the package, and its image installs only the serving dependencies listed in ``bentofile.yaml``
(BentoML, onnxruntime, pydantic, numpy, uvloop, httptools), not the research stack. The service imports only
``workbench.serving`` and ``workbench.monitoring.log`` (tests/serving/test_server.py checks both claims).

    make bento                                    # = .venv/bin/python bento/build.py
    .venv/bin/python bento/build.py --output tag  # extra arguments go to `bentoml build`
    .venv/bin/bentoml containerize workbench:latest

The model is the one ``service.py`` resolves at build time (``$WORKBENCH_MODEL_TAG`` or the production
pointer); the Bento keeps serving it whatever the pointer says later. Needs ``uv`` on PATH (``make setup``
installs it in ``.tools/bin``, which is added here). Works offline: nothing is resolved at build time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = ROOT / "src" / "workbench"


def stage(ctx: Path) -> Path:
    """Copy the service, its bentofile and the workbench package (sources only) into ``ctx``."""
    for name in ("service.py", "bentofile.yaml"):
        shutil.copy2(HERE / name, ctx / name)
    shutil.copytree(PACKAGE, ctx / "workbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return ctx


def main(argv: list[str]) -> int:
    if not (PACKAGE / "serving" / "__init__.py").is_file():
        print(f"error: {PACKAGE} not found; run this from a workbench checkout", file=sys.stderr)
        return 2
    env = dict(os.environ)
    tools = ROOT / ".tools" / "bin"
    if tools.is_dir():
        env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    if shutil.which("uv", path=env["PATH"]) is None:
        print("error: `bentoml build` needs uv on PATH; run `make setup` (installs .tools/bin/uv)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="workbench-bento-") as tmp:
        ctx = stage(Path(tmp))
        cmd = [sys.executable, "-m", "bentoml", "build", *argv, str(ctx)]
        return subprocess.run(cmd, cwd=ctx, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
