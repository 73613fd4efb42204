"""What the service records about its traffic: the prediction log and the Prometheus counters.

* :func:`prediction_log_for` -- a :class:`~workbench.monitoring.log.PredictionLog` for the served model, unless
  ``WORKBENCH_PREDICTION_LOG=off``; ``WORKBENCH_LOG_DIR``, ``WORKBENCH_LOG_RETENTION_DAYS`` and
  ``WORKBENCH_LOG_FSYNC=always`` configure it.
* :func:`prometheus_hook` -- counters on the service's ``/metrics``: ``workbench_predictions_total`` (rows scored)
  and ``workbench_flagged_inputs_total`` (by field and flag: ``unseen_category``, ``out_of_range``, ``missing``),
  both labelled with the model version. ``prometheus_client`` is imported here, at worker start-up, after
  BentoML has set up its multi-process collector directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["prediction_log_for", "prometheus_hook"]

_COUNTERS: dict[str, Any] = {}


def prediction_log_for(tag: str) -> Any:
    if os.environ.get("WORKBENCH_PREDICTION_LOG", "on").lower() in ("off", "0", "false", "no"):
        return None
    from ..monitoring.log import PredictionLog

    return PredictionLog(tag, retention_days=float(os.environ.get("WORKBENCH_LOG_RETENTION_DAYS", "30")),
                         fsync=os.environ.get("WORKBENCH_LOG_FSYNC", "never"))


def prometheus_hook(tag: str) -> Callable[[int, dict], None]:
    import prometheus_client as prom

    if not _COUNTERS:
        _COUNTERS["rows"] = prom.Counter("workbench_predictions", "Rows scored by the workbench service",
                                         ["model_version"])
        _COUNTERS["flags"] = prom.Counter("workbench_flagged_inputs", "Input values flagged by the guard",
                                          ["model_version", "field", "flag"])
    rows = _COUNTERS["rows"].labels(model_version=tag)
    flagged = _COUNTERS["flags"]

    def on_scored(n: int, flags: dict[int, dict[str, str]]) -> None:
        rows.inc(n)
        for per_row in flags.values():
            for field, flag in per_row.items():
                flagged.labels(model_version=tag, field=field, flag=flag).inc()

    return on_scored
