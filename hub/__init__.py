"""MoE Hub: model registry and experiment tracker for Mixture-of-Experts models.

`hub.client` (SDK and CLI) must stay importable without Django; nothing at this level
imports Django or Celery. Code the SDK, the server and the workers share lives in
`hub.shared`, which imports neither Django nor torch.
"""

__version__ = "0.1.0"
