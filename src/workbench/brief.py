"""The problem brief (Phase 1 of the lifecycle): what the work is for and how it will be judged.

A brief is a YAML file validated by :class:`Brief`. It names the data, the target and its positive label, the
features, the sensitive features with their fairness thresholds, the success metric, the baseline, the latency
budget and the kill criteria. Everything later phases decide (which metric, which columns, which gate) is read
from here, never hard-coded.

>>> brief = load_brief("briefs/adult.yaml")          # doctest: +SKIP
>>> brief.target.column, brief.sensitive_features     # doctest: +SKIP
('income', ['sex', 'race'])
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._names import normalize_column_name, suggest
from .errors import BriefError
from .tasks import TASK_NAMES, get_task

__all__ = [
    "Brief",
    "DataSpec",
    "TargetSpec",
    "FeatureSpec",
    "SuccessSpec",
    "BaselineSpec",
    "FairnessSpec",
    "KillCriterion",
    "MonitoringSpec",
    "SensitiveBins",
    "ModelCardSpec",
    "LeakageSpec",
    "SearchSpec",
    "CalibrationSpec",
    "DeploymentSpec",
    "DeriveSpec",
    "FairnessAck",
    "load_brief",
    "PRIMARY_METRICS",
]

PRIMARY_METRICS = ("pr_auc", "roc_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier")
"""The binary task's metrics (every task's catalogue: ``workbench.tasks.get_task(name).metrics``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DataSpec(_Strict):
    """Where the data lives. Relative paths are resolved against the brief file's folder."""

    train: str = Field(description="CSV or Parquet file with the training data (or all data when no test file)")
    test: str | None = Field(None, description="held-out test file; when absent the train file is split")
    test_size: float = Field(0.25, gt=0, lt=1, description="held-out fraction when no test file is given")
    separator: str = Field(",", min_length=1, max_length=1, description="CSV field separator")
    na_values: list[str] = Field(
        default_factory=lambda: ["", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None"],
        description="text values read as missing",
    )
    collected: str | int | None = Field(None, description="when the data was collected (year or ISO date)")
    max_age_years: float = Field(2.0, gt=0, description="age beyond which data counts as stale (timeliness)")
    prediction_time: str | None = Field(
        None, description="date column holding when a prediction is made for each row; a date column recorded "
                          "after it is a leak (the audit flags it)")
    split: Literal["random", "time"] = Field(
        "random", description="how the held-out split is made when there is no test file: random (stratified) or "
                              "time (the latest test_size of the rows by split_column)")
    split_column: str | None = Field(None, description="date column a time split orders by")
    allow_duplicate_headers: bool = Field(
        False, description="rename duplicate column headers (recorded in the manifest) instead of refusing the file")


class TargetSpec(_Strict):
    column: str
    positive_label: str | int | bool | None = Field(
        None, description="binary classification only: the value of the target that counts as positive")
    decision_threshold: float | None = Field(
        None, gt=0, lt=1, description="binary classification only: probability above which the label is "
                                      "positive (default 0.5)")


class DeriveSpec(_Strict):
    """A feature derived from date columns: parts of one date, or the days between two."""

    column: str | None = Field(None, description="date column to take parts of")
    parts: list[Literal["year", "month", "day", "day_of_week", "day_of_year", "quarter"]] = Field(
        default_factory=list, description="parts of the date, each becoming a numeric feature <column>_<part>")
    days_between: list[str] | None = Field(None, min_length=2, max_length=2,
                                           description="[start, end] date columns: end - start in days")
    name: str | None = Field(None, description="name of the days_between feature (default <end>_minus_<start>_days)")

    @model_validator(mode="after")
    def _one_kind(self) -> DeriveSpec:
        if (self.column is None) == (self.days_between is None):
            raise ValueError("give either column (with parts) or days_between")
        if self.column is not None and not self.parts:
            raise ValueError("name the parts to derive from the date column")
        return self


class FeatureSpec(_Strict):
    include: list[str] = Field(default_factory=list, description="feature columns; empty means all but target/excluded")
    exclude: list[str] = Field(default_factory=list, description="columns never used as features")
    derive: list[DeriveSpec] = Field(default_factory=list, description="features derived from date columns")


class LeakageSpec(_Strict):
    """When a column or a result looks too predictive to be honest. ``warn`` levels go into the gate table, the
    report and the model card; ``block`` levels stop promotion unless ``acknowledge`` names the column with a
    reason. Levels are on the task's single-feature score: ROC-AUC (binary, max(AUC, 1 - AUC)), one-vs-rest macro
    AUC (multiclass), cross-fitted R^2 (regression)."""

    warn_score: float | None = Field(None, gt=0, le=1, description="single-feature score that warns (task default)")
    block_score: float | None = Field(None, gt=0, le=1, description="single-feature score that blocks (task default)")
    shap_share_warn: float = Field(0.5, gt=0, le=1, description="share of the model's mean |SHAP| one feature may "
                                                                "carry before it warns")
    acknowledge: dict[str, str] = Field(default_factory=dict,
                                        description="column (or 'held_out_metric') -> why its signal is not a leak")


class SearchSpec(_Strict):
    """The Prototype phase's hyper-parameter search (Optuna, TPE, seeded; median pruning on the CV folds)."""

    families: list[str] = Field(default_factory=list, description="candidate families to search (empty: the task's)")
    n_trials: int = Field(20, ge=1, le=1000, description="trials per family")
    timeout_s: float = Field(40.0, gt=0, description="wall-time budget per family, seconds")
    total_timeout_s: float = Field(100.0, gt=0, description="wall-time budget of the whole search, seconds")
    cv_folds: int = Field(3, ge=2, le=10, description="CV folds inside the training split for each trial")
    enabled: bool = Field(True, description="false: fit the candidates with their default parameters only")


class CalibrationSpec(_Strict):
    ece_tolerance: float = Field(0.02, ge=0, le=1, description="CV expected calibration error above which a "
                                                                "calibrated version is tried (classification)")


class DeploymentSpec(_Strict):
    """Release rules (Deployment phase): champion/challenger tolerance and automatic rollback triggers."""

    metric_tolerance: float = Field(0.01, ge=0, description="how much worse than the champion the challenger's "
                                                            "primary metric may be")
    guardrail_tolerance: float = Field(0.02, ge=0, description="how much a guardrail (fairness gap upper bound, "
                                                               "calibration error) may regress")
    latency_ratio: float = Field(2.0, gt=1, description="challenger p99 / champion p99 that rolls back")
    error_ratio: float = Field(2.0, gt=1, description="challenger error rate / champion error rate that rolls back")
    metric_drop: float = Field(0.05, ge=0, description="drop of the primary metric on labelled traffic that rolls back")
    window_s: float = Field(300.0, gt=0, description="sliding window the watcher compares over, seconds")
    min_requests: int = Field(100, ge=1, description="requests per model in the window before the watcher judges")
    canary_steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], description="canary percentages")
    min_labels: int = Field(200, ge=10, description="labelled rows per model (workbench feedback) before a drop of "
                                                     "the primary metric can roll the challenger back")
    replay_requests: int = Field(1000, ge=1, le=100_000, description="recorded production requests the release's "
                                                                      "integration test replays (the test split "
                                                                      "when there is no log)")
    load_test_seconds: float = Field(20.0, gt=0, le=600, description="length of the release's load test against "
                                                                      "a real bentoml serve")
    load_test_clients: int = Field(32, ge=1, le=256, description="concurrent clients of the load test")
    load_test_max_requests: int = Field(200_000, ge=1, description="requests after which the load test stops "
                                                                    "even before its time is up")
    load_test_p99_ms: float = Field(250.0, gt=0, description="p99 latency under load that refuses the release")
    load_test_max_error_rate: float = Field(0.0, ge=0, le=1, description="share of non-2xx answers under load "
                                                                           "that refuses the release")


class SuccessSpec(_Strict):
    metric: str = Field("", description="primary metric (empty: the task's default); see workbench.tasks")
    threshold: float = Field(description="value of the metric on held-out data that counts as success")


class BaselineSpec(_Strict):
    description: str = "majority class and a one-feature rule; the best of them is the bar"
    min_improvement: float = Field(0.0, ge=0, description="margin a candidate must beat the best baseline by")


class FairnessAck(_Strict):
    """Groups of one sensitive feature whose gap cannot be judged on this data, accepted with a reason."""

    feature: str = Field(description="sensitive feature (or intersection 'a & b')")
    groups: list[str] = Field(min_length=1, description="group labels as the fairness report shows them")
    reason: str = Field(min_length=1, description="why promotion may go ahead without evidence for these groups")


class FairnessSpec(_Strict):
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.2},
        description="largest allowed gap between groups, per fairness metric of the task",
    )
    min_slice_size: int = Field(30, ge=1, description="a slice smaller than this is 'insufficient evidence'")
    confidence_level: float = Field(0.95, gt=0.5, lt=1)
    bootstrap_samples: int = Field(200, ge=20, le=10000)
    acknowledge: list[FairnessAck] = Field(
        default_factory=list, description="groups with too little evidence that may pass review, each with a reason")
    intersections: bool = Field(True, description="also slice and gate the intersection of the sensitive features "
                                                  "(false: each feature alone; say why in the brief)")


class KillCriterion(_Strict):
    """A condition that stops the work. ``check`` says which evidence it is evaluated against."""

    id: str
    description: str
    check: Literal["quality_score_below", "no_lift_over_baseline", "success_threshold_missed",
                   "fairness_gap_exceeded", "manual"]
    value: float | None = None


class MonitoringSpec(_Strict):
    psi_warning: float = Field(0.1, gt=0)
    psi_critical: float = Field(0.25, gt=0)
    ks_alpha: float = Field(0.01, gt=0, lt=1)
    metric_tolerance: float = Field(0.05, ge=0, description="drop of the primary metric counted as concept drift")
    min_rows: int = Field(300, ge=1, description="logged rows below which drift says 'not enough data' (exit 0)")

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringSpec:
        if self.psi_critical <= self.psi_warning:
            raise ValueError("psi_critical must be larger than psi_warning")
        return self


class ModelCardSpec(_Strict):
    """What the model card says that data cannot: intended and out-of-scope uses, ethical notes, limitations."""

    intended_use: list[str] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)
    ethical_considerations: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)


class SensitiveBins(_Strict):
    """A numeric sensitive feature sliced into bins: ``{column: age, bins: [35, 50]}`` (edges; a value ``v``
    falls in ``(e_i, e_i+1]``) or ``{column: age, quantiles: 4}`` (training-split quantiles)."""

    column: str
    bins: list[float] | None = Field(None, min_length=1, description="bin edges, increasing")
    quantiles: int | None = Field(None, ge=2, le=20, description="number of quantile bins")

    @model_validator(mode="after")
    def _one_way(self) -> SensitiveBins:
        if self.bins is not None and self.quantiles is not None:
            raise ValueError("give either bins or quantiles, not both")
        if self.bins is not None and any(a >= b for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise ValueError(f"bins must be strictly increasing, got {self.bins}")
        return self


class Brief(_Strict):
    """A validated problem brief. Column names are normalised to snake_case on load."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="short id, used in run ids")
    objective: str = Field(min_length=1, description="the business objective in one or two sentences")
    owner: str | None = None
    task: Literal[TASK_NAMES] = "binary_classification"  # type: ignore[valid-type]
    data: DataSpec
    target: TargetSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    sensitive_features: list[str] = Field(default_factory=list)
    #: numeric sensitive features sliced into bins (from ``{column, bins|quantiles}`` entries of sensitive_features)
    sensitive_bins: dict[str, SensitiveBins] = Field(default_factory=dict)
    success: SuccessSpec
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)
    latency_budget_ms: float = Field(gt=0, description="single-row prediction latency budget (p99)")
    min_quality_score: int = Field(18, ge=0, le=30, description="data quality score (of 30) needed to proceed")
    kill_criteria: list[KillCriterion] = Field(default_factory=list)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    model_card: ModelCardSpec = Field(default_factory=ModelCardSpec)
    leakage: LeakageSpec = Field(default_factory=LeakageSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)

    # Where the brief was read from (not part of the YAML).
    source: str | None = Field(None, exclude=True)

    @field_validator("sensitive_features")
    @classmethod
    def _norm_list(cls, v: list[str]) -> list[str]:
        return [normalize_column_name(c) for c in v]

    @model_validator(mode="before")
    @classmethod
    def _normalise_columns(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        sens = values.get("sensitive_features")
        if isinstance(sens, list):
            names, bins = [], dict(values.get("sensitive_bins") or {})
            for entry in sens:
                if isinstance(entry, dict) and isinstance(entry.get("column"), str):
                    col = normalize_column_name(entry["column"])
                    names.append(col)
                    bins[col] = {**entry, "column": col}
                else:
                    names.append(entry)
            values["sensitive_features"], values["sensitive_bins"] = names, bins
        task = values.get("task", "binary_classification")
        if task in TASK_NAMES and task != "binary_classification":
            f = values.get("fairness")
            if isinstance(f, dict) and "thresholds" not in f:
                values["fairness"] = {**f, "thresholds": dict(get_task(task).default_gap_thresholds)}
            elif f is None:
                values["fairness"] = {"thresholds": dict(get_task(task).default_gap_thresholds)}
        d = values.get("data")
        if isinstance(d, dict):
            values["data"] = {k: normalize_column_name(v) if k in ("prediction_time", "split_column")
                              and isinstance(v, str) else v for k, v in d.items()}
        lk = values.get("leakage")
        if isinstance(lk, dict) and isinstance(lk.get("acknowledge"), dict):
            values["leakage"] = {**lk, "acknowledge": {
                (k if k == "held_out_metric" else normalize_column_name(str(k))): v
                for k, v in lk["acknowledge"].items()}}
        fa = values.get("fairness")
        if isinstance(fa, dict) and isinstance(fa.get("acknowledge"), list):
            # the feature of an acknowledgement is named as the sensitive features are: a column, or "a & b"
            values["fairness"] = {**fa, "acknowledge": [
                {**a, "feature": " & ".join(normalize_column_name(p.strip()) for p in a["feature"].split("&"))}
                if isinstance(a, dict) and isinstance(a.get("feature"), str) else a for a in fa["acknowledge"]]}
        t = values.get("target")
        if isinstance(t, dict) and isinstance(t.get("column"), str):
            values["target"] = {**t, "column": normalize_column_name(t["column"])}
        f = values.get("features")
        if isinstance(f, dict):
            values["features"] = {
                k: [normalize_column_name(c) for c in v] if isinstance(v, list) and k in ("include", "exclude")
                and all(isinstance(c, str) for c in v) else v
                for k, v in f.items()
            }
            derive = values["features"].get("derive")
            if isinstance(derive, list):
                values["features"]["derive"] = [
                    {**e, **({"column": normalize_column_name(e["column"])} if isinstance(e.get("column"), str)
                             else {}),
                     **({"days_between": [normalize_column_name(c) if isinstance(c, str) else c
                                          for c in e["days_between"]]}
                        if isinstance(e.get("days_between"), list) else {})}
                    if isinstance(e, dict) else e for e in derive]
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Brief:
        t = self.target.column
        if t in self.features.include:
            raise ValueError(f"features.include lists the target column '{t}'")
        if t in self.sensitive_features:
            raise ValueError(f"sensitive_features lists the target column '{t}'")
        both = set(self.features.include) & set(self.features.exclude)
        if both:
            raise ValueError(f"columns both included and excluded: {sorted(both)}")
        problems = self.task_problems()
        if problems:
            raise ValueError("; ".join(f"key '{k}': {m}" for k, m in problems))
        return self

    def task_problems(self) -> list[tuple[str, str]]:
        """Keys that do not fit the brief's task: ``[(key, what is wrong and what the task accepts)]``."""
        task = get_task(self.task)
        out = []
        metric = self.success.metric
        if metric and metric not in task.metrics:
            out.append(("success.metric", f"{metric!r} is not a metric of task {self.task}; it accepts: "
                                          f"{', '.join(task.metrics)}"))
        for m in self.fairness.thresholds:
            if m not in task.gap_metrics:
                out.append((f"fairness.thresholds.{m}", f"not a fairness gap of task {self.task}; it accepts: "
                                                        f"{', '.join(task.gap_metrics)}"))
        allowed = set(task.target_keys)
        for key in ("positive_label", "decision_threshold"):
            if getattr(self.target, key) is not None and key not in allowed:
                out.append((f"target.{key}", f"does not apply to task {self.task} (only to binary_classification)"
                                             "; remove it"))
        if self.task == "binary_classification" and self.target.positive_label is None:
            out.append(("target.positive_label", "is required for binary_classification: the target value "
                                                 "that counts as positive"))
        if self.data.split == "time" and not self.data.split_column:
            out.append(("data.split_column", "is required with data.split: time (the date column to order by)"))
        for col in self.sensitive_bins:
            if col not in self.sensitive_features:
                out.append((f"sensitive_bins.{col}", "names a column that is not a sensitive feature"))
        return out

    # ------------------------------------------------------------------ the task
    @property
    def task_spec(self) -> Any:
        """The :class:`~workbench.tasks.Task` object of this brief."""
        return get_task(self.task)

    @property
    def primary_metric(self) -> str:
        """``success.metric``, or the task's default primary metric when the brief leaves it empty."""
        return self.success.metric or self.task_spec.default_primary

    @property
    def threshold(self) -> float | None:
        """Binary classification's decision threshold (default 0.5); None for the other tasks."""
        if self.task != "binary_classification":
            return None
        return 0.5 if self.target.decision_threshold is None else float(self.target.decision_threshold)

    # ------------------------------------------------------------------ paths and columns
    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def train_path(self) -> Path:
        return self.resolve(self.data.train)

    @property
    def test_path(self) -> Path | None:
        return self.resolve(self.data.test) if self.data.test else None

    def referenced_columns(self) -> dict[str, str]:
        """Every column the brief names, keyed by the brief key that names it."""
        refs = {"target.column": self.target.column}
        refs.update({f"features.include[{i}]": c for i, c in enumerate(self.features.include)})
        refs.update({f"features.exclude[{i}]": c for i, c in enumerate(self.features.exclude)})
        refs.update({f"sensitive_features[{i}]": c for i, c in enumerate(self.sensitive_features)})
        for key in ("prediction_time", "split_column"):
            if getattr(self.data, key):
                refs[f"data.{key}"] = getattr(self.data, key)
        for i, d in enumerate(self.features.derive):
            if d.column:
                refs[f"features.derive[{i}].column"] = d.column
            for j, c in enumerate(d.days_between or []):
                refs[f"features.derive[{i}].days_between[{j}]"] = c
        return refs

    def check_columns(self, columns: list[str], *, data_file: str | Path | None = None) -> None:
        """Raise :class:`BriefError` naming the key of the first column the data does not have."""
        problems = []
        for key, col in self.referenced_columns().items():
            if col not in columns:
                problems.append(
                    f"key '{key}': column '{col}' is not in the data{suggest(col, columns)}"
                )
        if problems:
            where = f" {data_file}" if data_file else ""
            raise BriefError(
                "; ".join(problems),
                file=self.source,
                key=next(iter(k for k, c in self.referenced_columns().items() if c not in columns)),
                expected=f"a column of{where}: {_shown(columns)}",
                hint="correct the column name in the brief (names are compared in snake_case)",
            )

    def feature_columns(self, columns: list[str]) -> list[str]:
        """The model's feature columns for data with these columns, in data order."""
        if self.features.include:
            return [c for c in columns if c in set(self.features.include)]
        drop = {self.target.column, *self.features.exclude}
        return [c for c in columns if c not in drop]

    def sha256(self) -> str | None:
        return hashlib.sha256(Path(self.source).read_bytes()).hexdigest() if self.source else None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def _shown(names: list[str], limit: int = 30, width: int = 80) -> str:
    """Names for a message, bounded: at most ``limit`` names of at most ``width`` characters each."""
    cut = [n if len(n) <= width else n[:width] + "…" for n in names[:limit]]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(cut) + more


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_brief(path: str | Path) -> Brief:
    """Read and validate a brief.

    Raises
    ------
    BriefError
        The file is missing, is not YAML, has an unknown key, a wrong type or an invalid value. The message names
        the file, the key and what was expected.
    """
    p = Path(path)
    if not p.is_file():
        raise BriefError("brief file not found", file=p, hint="pass an existing YAML file with --brief")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except RecursionError:
        raise BriefError("the YAML is nested too deeply to be a brief", file=p,
                         hint="a brief is a few levels deep: see briefs/adult.yaml") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BriefError(f"not valid YAML{line}: {getattr(exc, 'problem', exc)}", file=p,
                         hint="fix the YAML syntax (indentation, colons, quotes)") from None
    if not isinstance(raw, dict):
        raise BriefError("the brief must be a YAML mapping of keys to values", file=p,
                         expected="keys such as name, objective, data, target, success")
    try:
        return Brief.model_validate({**raw, "source": str(p.resolve())})
    except ValidationError as exc:
        errs = exc.errors()
        details = []
        for e in errs:
            k = _loc(e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                allowed = _allowed_keys(e["loc"][:-1])
                exp = f" (expected one of: {', '.join(allowed)}.{suggest(str(e['loc'][-1]), allowed)})" if allowed else ""
                details.append(f"key '{k}': unknown key{exp}")
            elif e["type"] == "missing":
                details.append(f"key '{k}': required key is missing")
            elif e["type"] == "value_error" and not e["loc"] and "key '" in e["msg"]:
                details.append(e["msg"].removeprefix("Value error, "))
            else:
                got = e.get("input")
                got_s = f" (got {got!r})" if not isinstance(got, dict | list) else ""
                details.append(f"key '{k}': {e['msg']}{got_s}")
        first = re.search(r"key '([^']+)'", details[0]) if details else None
        raise BriefError("; ".join(details), file=p, key=first.group(1) if first else "(top level)",
                         key_in_message=True,
                         hint="see briefs/adult.yaml for a complete, commented example") from None


def _allowed_keys(parent: tuple) -> list[str]:
    model: Any = Brief
    for part in parent:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [k for k in model.model_fields if k != "source"]
