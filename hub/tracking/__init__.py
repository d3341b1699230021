"""Experiment tracking: runs, params, metrics, search, comparison reports."""
