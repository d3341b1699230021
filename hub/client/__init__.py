"""The MoE Hub Python SDK. Importable without Django or torch::

    from hub.client import Client
    c = Client()                      # HUB_URL / HUB_TOKEN, or what `hub login` saved
    c.create_repo("alice/moe-small")
    c.push("out/", repo="alice/moe-small", branch="main", message="first weights")
    c.pull("alice/moe-small@main", "checkout/")

Modules: ``api`` (the :class:`Client`: HTTP, push, pull), ``run`` (a tracked run, whose
``log`` never blocks), ``system`` (the system-metrics sampler), ``spool`` (sending what a run
spooled while the hub was unreachable; ``hub sync``), ``cli`` (the ``hub`` command). What
they share with the server (path rule, chunking, wire format, spool layout) is
:mod:`hub.shared`.
"""

from hub.client.api import Client, PushResult
from hub.client.errors import HubClientError, HubUnreachable

__all__ = ["Client", "HubClientError", "HubUnreachable", "PushResult"]
