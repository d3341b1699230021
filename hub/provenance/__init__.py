"""Provenance of generated text: per-repo watermark keys and settings, and the verify API."""
