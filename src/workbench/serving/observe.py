"""What the service records about its traffic: the prediction log and the Prometheus counters.

* :func:`prediction_log_for` -- a :class:`~workbench.monitoring.log.PredictionLog` for the served model, unless
  ``WORKBENCH_PREDICTION_LOG=off``; ``WORKBENCH_LOG_DIR``, ``WORKBENCH_LOG_RETENTION_DAYS`` and
  ``WORKBENCH_LOG_FSYNC=always`` configure it. Creating it touches no file: the service probes it
  (:meth:`~workbench.monitoring.log.PredictionLog.check`) and starts unavailable, never crashing, when the folder
  is unwritable.
* :func:`log_failure_hook` -- ``workbench_prediction_log_failures_total`` (by model version and policy) for every
  line the log could not write, and ``workbench_prediction_log_lost_total`` for the requests answered anyway under
  ``WORKBENCH_LOG_ON_FAILURE=serve``.
* :func:`prometheus_hook` -- counters on the service's ``/metrics``: ``workbench_predictions_total`` (rows scored)
  and ``workbench_flagged_inputs_total`` (by field and flag: ``unseen_category``, ``out_of_range``, ``missing``),
  both labelled with the model version. ``prometheus_client`` is imported here, at worker start-up, after
  BentoML has set up its multi-process collector directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["log_failure_hook", "log_on_failure", "prediction_log_for", "prometheus_hook"]

_COUNTERS: dict[str, Any] = {}


def log_on_failure() -> str:
    """``$WORKBENCH_LOG_ON_FAILURE``: ``refuse`` (default) or ``serve`` (:mod:`workbench.monitoring.log`)."""
    from ..monitoring.log import log_on_failure as policy

    return policy()


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


def log_failure_hook(tag: str) -> Callable[[BaseException, str], None]:
    """The predictor's ``on_log_failure``: count a failed log write (and, under ``serve``, the lost line)."""
    import prometheus_client as prom

    if "log_failures" not in _COUNTERS:
        _COUNTERS["log_failures"] = prom.Counter(
            "workbench_prediction_log_failures", "Prediction log lines that could not be written",
            ["model_version", "policy"])
        _COUNTERS["log_lost"] = prom.Counter(
            "workbench_prediction_log_lost", "Requests answered without their prediction log line "
            "(WORKBENCH_LOG_ON_FAILURE=serve)", ["model_version"])
    failures, lost = _COUNTERS["log_failures"], _COUNTERS["log_lost"].labels(model_version=tag)

    def on_log_failure(exc: BaseException, policy: str) -> None:
        failures.labels(model_version=tag, policy=policy).inc()
        if policy == "serve":
            lost.inc()

    return on_log_failure
