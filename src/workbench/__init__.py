"""workbench: a notebook-first research-to-production workbench for tabular models.

The package is cut by lifecycle phase:

* :mod:`workbench.brief` -- the problem brief (Phase 1, framing);
* :mod:`workbench.data` -- Discovery: loading, the data contract, the audit and quality score;
* :mod:`workbench.runs` -- reproducible papermill runs and their manifests;
* :mod:`workbench.cli` -- the ``workbench`` command.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
