"""Serving-only code: the HTTP routes, endpoint table, predictor, pages, spec, metrics and request log."""
