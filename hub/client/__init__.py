"""The MoE Hub Python SDK. Importable without Django or torch::

    from hub.client import Client
    c = Client()                      # HUB_URL / HUB_TOKEN, or what `hub login` saved
    c.create_repo("alice/moe-small")
    c.push("out/", repo="alice/moe-small", branch="main", message="first weights")
    c.pull("alice/moe-small@main", "checkout/")
"""

from hub.client.api import Client, PushResult
from hub.client.errors import HubClientError, HubUnreachable

__all__ = ["Client", "HubClientError", "HubUnreachable", "PushResult"]
