"""Typed parameters of the phase notebooks.

Each notebook has one cell tagged ``parameters`` (literals with a comment each, so ``papermill --help-notebook``
documents them) and, right after it, a cell that builds one of these models. Papermill only *warns* about
unknown parameters and never checks types; these models raise instead. The runner validates ``-p key=value``
options with the same models before any kernel starts.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ParameterError

__all__ = ["DiscoveryParams", "PrototypeParams", "PHASE_PARAMS", "validate_params", "parse_cli_value"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brief_path: str = Field(description="problem brief (YAML)")
    run_dir: str = Field("", description="run folder for reports; empty = explore without saving")
    seed: int = Field(42, ge=0, description="seed for sampling, splits and models")
    sample_rows: int = Field(0, ge=0, description="rows per split; 0 = all")

    @field_validator("brief_path")
    @classmethod
    def _brief_exists(cls, v: str) -> str:
        from .config import resolve_brief_path
        from .errors import BriefError

        try:
            return str(resolve_brief_path(v))
        except BriefError as exc:
            raise ValueError(exc.message) from None


class DiscoveryParams(_Params):
    as_of: str = Field("", description="date timeliness is judged against (YYYY-MM-DD); empty = today")
    max_categories: int = Field(100, ge=2, description="text columns with more distinct values are excluded")

    @field_validator("as_of")
    @classmethod
    def _date(cls, v: str) -> str:
        if v:
            _dt.date.fromisoformat(v)
        return v

    @property
    def as_of_date(self) -> _dt.date | None:
        return _dt.date.fromisoformat(self.as_of) if self.as_of else None


class PrototypeParams(_Params):
    candidates: str = Field("", description="comma-separated candidate names; empty = the task's candidates")
    cv_folds: int = Field(5, ge=2, le=20, description="stratified CV folds on the training split")
    shap_sample: int = Field(1000, ge=10, description="rows explained by SHAP")
    bootstrap_samples: int = Field(0, ge=0, description="fairness bootstrap replicates; 0 = the brief's value")
    search_trials: int = Field(0, ge=0, le=1000, description="search trials per family; 0 = the brief's "
                                                             "search.n_trials")
    search_timeout: float = Field(0.0, ge=0, description="search wall time per family, seconds; 0 = the brief's "
                                                         "search.timeout_s")

    @field_validator("candidates")
    @classmethod
    def _tidy(cls, v: str) -> str:
        return ",".join(c.strip() for c in v.split(",") if c.strip())

    @model_validator(mode="after")
    def _known_candidates(self) -> PrototypeParams:
        from .modeling import candidates_for

        known = candidates_for(self.task)
        unknown = [c for c in self.candidates.split(",") if c and c not in known]
        if unknown:
            raise ValueError(f"unknown candidate(s) {unknown} for task {self.task}; choose from {', '.join(known)}")
        return self

    @property
    def task(self) -> str:
        """The brief's task (read from the brief file)."""
        try:
            raw = yaml.safe_load(Path(self.brief_path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return "binary_classification"
        task = raw.get("task", "binary_classification") if isinstance(raw, dict) else "binary_classification"
        from .tasks import TASK_NAMES

        return task if task in TASK_NAMES else "binary_classification"

    @property
    def candidate_list(self) -> list[str]:
        """The candidates to fit: the ``candidates`` parameter, or every candidate of the brief's task."""
        if self.candidates:
            return self.candidates.split(",")
        from .modeling import candidates_for

        return list(candidates_for(self.task))


PHASE_PARAMS: dict[str, type[_Params]] = {"discovery": DiscoveryParams, "prototype": PrototypeParams}


def parse_cli_value(raw: str) -> Any:
    """Parse a ``-p key=value`` value the way YAML would (``3`` -> int, ``true`` -> bool, ``a,b`` -> str)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if isinstance(value, dict | list) or value is None and raw not in ("null", "~") else value


def validate_params(phase: str, values: dict[str, Any]) -> _Params:
    """Validate a phase's parameters; raise :class:`ParameterError` naming the parameter and what is expected."""
    model = PHASE_PARAMS[phase]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        e = exc.errors()[0]
        name = ".".join(str(p) for p in e["loc"]) or ("candidates" if "candidate" in e["msg"] else "?")
        if e["type"] == "extra_forbidden":
            known = ", ".join(k for k in model.model_fields)
            raise ParameterError(f"unknown parameter for the {phase} notebook", parameter=name,
                                 hint=f"known parameters: {known}") from None
        field = model.model_fields.get(name)
        desc = f" ({field.description})" if field is not None and field.description else ""
        raise ParameterError(f"{e['msg']} (got {e.get('input')!r}){desc}", parameter=name) from None
