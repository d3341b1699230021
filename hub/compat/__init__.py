"""Compatibility layers: the hub answering other tools' protocols (MLflow's tracking API)."""
