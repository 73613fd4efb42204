"""Serving tests: the Predictor (tier 1), the ASGI app (tier 2), a real `bentoml serve` process (tier 3)."""
