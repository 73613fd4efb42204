"""The exceptions workbench raises. Every one says what is wrong, where, and how to fix it.

One root, :class:`WorkbenchError`; subclasses carry the context (file, key, column, cell, gate). The CLI turns
them into a message and an exit code (``exit_code``) instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "WorkbenchError",
    "BriefError",
    "DataError",
    "ContractError",
    "ParameterError",
    "RunError",
    "NotebookCellError",
    "GateError",
    "ModelError",
    "EvaluationError",
]


MAX_MESSAGE = 2000
"""A message or hint longer than this is cut (data can put a 100,000-character header name into a message)."""


def _bounded(text: str) -> str:
    text = str(text)
    if len(text) <= MAX_MESSAGE:
        return text
    return text[:MAX_MESSAGE] + f"… ({len(text) - MAX_MESSAGE:,} more characters)"


class WorkbenchError(Exception):
    """Root of every workbench error.

    Parameters
    ----------
    message:
        What is wrong.
    hint:
        How to fix it (shown after the message).
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = _bounded(message)
        self.hint = _bounded(hint) if hint is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, "message": self.message, "hint": self.hint}


class BriefError(WorkbenchError):
    """The problem brief is invalid: names the file, the key and what was expected."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None,
                 expected: str | None = None, hint: str | None = None, key_in_message: bool = False) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.expected = expected
        shown_key = None if key_in_message else key
        parts = [self.file and f"file {self.file}", shown_key and f"key '{shown_key}'"]
        where = ", ".join(p for p in parts if p)
        full = f"{where}: {message}" if where else message
        if expected:
            full += f" (expected {expected})"
        super().__init__(full, hint=hint)


class DataError(WorkbenchError):
    """A data file cannot be used as it is: names the file and, where known, the column."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, column: str | None = None,
                 hint: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.column = column
        parts = [self.file and f"file {self.file}", column and f"column '{column}'"]
        where = ", ".join(p for p in parts if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)


class ContractError(DataError):
    """Data breaks its data contract (unknown column, wrong type, value out of the allowed set)."""


class ParameterError(WorkbenchError):
    """A notebook or command parameter is unknown or has an invalid value."""

    exit_code = 2

    def __init__(self, message: str, *, parameter: str | None = None, hint: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"parameter '{parameter}': {message}" if parameter else message, hint=hint)


class RunError(WorkbenchError):
    """A run could not be started or completed."""


class NotebookCellError(RunError):
    """A notebook cell raised: names the notebook, the cell and the error."""

    def __init__(self, message: str, *, notebook: str, cell: int | None, ename: str | None,
                 evalue: str | None, output: str | None = None, hint: str | None = None) -> None:
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        where = f"{notebook}, cell {cell}" if cell is not None else notebook
        super().__init__(f"{where}: {message}", hint=hint)


class GateError(WorkbenchError):
    """A go/no-go gate refused: names the gate, its value and its threshold."""

    exit_code = 3


class ModelError(WorkbenchError):
    """A model cannot be built, fitted or explained as asked: names the model."""

    exit_code = 2

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None) -> None:
        self.model = model
        super().__init__(f"model '{model}': {message}" if model else message, hint=hint)


class EvaluationError(WorkbenchError):
    """Evaluation inputs cannot be scored (lengths differ, probabilities outside [0, 1], an all-null sensitive
    column, ...): names the argument and says what is expected."""

    exit_code = 2

    def __init__(self, message: str, *, argument: str | None = None, hint: str | None = None) -> None:
        self.argument = argument
        super().__init__(f"argument '{argument}': {message}" if argument else message, hint=hint)
