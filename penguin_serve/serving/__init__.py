"""Serving-only code: the HTTP routes, endpoint table, classifier, pages, spec, metrics and request log."""
