"""Whole networks from YAML: template expressions, the spec, evaluation, results and ``check``."""
