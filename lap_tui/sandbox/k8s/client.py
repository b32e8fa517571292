"""The connection to the cluster: kubeconfig or in-cluster credentials, the API clients, and
which agent-sandbox versions the cluster serves. The only place `kubernetes.aio` is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox.k8s.objects import GROUP, VERSIONS

# Subprotocols of pods/exec, newest first: v5 adds closing stdin; v4 has the Status on channel 3.
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


@dataclass
class Apis:
    client: Any  # kubernetes.aio.client, the module
    api: Any  # ApiClient
    ws: Any  # the exec websocket client
    core: Any  # CoreV1Api
    custom: Any  # CustomObjectsApi
    context: str  # "in-cluster" or the kubeconfig context in force
    host: str

    async def close(self) -> None:
        await self.api.close()
        await self.ws.close()


async def connect(*, kubeconfig: str = "", context: str = "") -> Apis:
    """Clients for `context` of `kubeconfig` (else $KUBECONFIG, ~/.kube/config), or in-cluster."""
    from kubernetes.aio import client, config
    from kubernetes.aio.stream import WsApiClient

    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG", "") or os.path.expanduser("~/.kube/config")
    in_cluster = not kubeconfig and not context and not os.path.exists(path.split(":")[0]) \
        and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)
            used = "in-cluster"
        else:
            loader = await config.load_kube_config(config_file=path, context=context or None,
                                                   client_configuration=cfg, persist_config=False)
            used = loader.current_context["name"]
    except (config.ConfigException, OSError) as exc:
        raise SandboxError(f"cannot load the Kubernetes configuration ({path}): {exc}",
                           "set kubeconfig / kube_context (or KUBECONFIG, LAP_KUBE_CONTEXT), "
                           "e.g. `bin/k8s-dev env` for the dev cluster") from None

    class _Ws(WsApiClient):  # type: ignore[misc, valid-type]
        """Offers v5 and v4 and learns which one the server chose (the stock client asks v4 only)."""

        async def request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                          post_params: Any = None, body: Any = None, _preload_content: bool = True,
                          _request_timeout: Any = None) -> Any:
            from kubernetes.aio.stream.ws_client import get_websocket_url

            headers = {k: v for k, v in (headers or {}).items() if k.lower() != "sec-websocket-protocol"}
            if self.rest_client.pool_manager is None:
                self.rest_client.pool_manager = self.rest_client._create_pool_manager()
            return self.rest_client.pool_manager.ws_connect(get_websocket_url(url), headers=headers,
                                                            protocols=EXEC_PROTOCOLS, max_msg_size=0,
                                                            autoping=True)

    api = client.ApiClient(cfg)
    ws = _Ws(configuration=cfg)
    return Apis(client=client, api=api, ws=ws, core=client.CoreV1Api(api), custom=client.CustomObjectsApi(api),
                context=used, host=cfg.host)


async def served_versions(apis: Apis) -> list[str]:
    """agent-sandbox versions the cluster serves, preferred first; SandboxError when none."""
    try:
        groups = await apis.client.ApisApi(apis.api).get_api_versions()
    except apis.client.ApiException as exc:
        raise SandboxError(f"cannot list the cluster's API groups: {exc.status} {exc.reason}",
                           "check the kube context and your access") from None
    for g in groups.groups or ():
        if g.name == GROUP:
            have = {v.version for v in g.versions}
            found = [v for v in VERSIONS if v in have]
            if found:
                return found
    raise SandboxError(f"the cluster serves no {GROUP} Sandbox API",
                       "install kubernetes-sigs/agent-sandbox (v0.5.6) in the cluster")
