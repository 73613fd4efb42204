"""Observability: the prediction log, the reference profile saved at promotion, and drift (PSI/KS).

This package does not import :mod:`workbench.evaluation` or :mod:`workbench.export`. The feedback loop, which
re-runs the Prototype phase's evaluation on labelled live traffic, composes the two in :mod:`workbench.feedback`.
"""
