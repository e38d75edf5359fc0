"""The live cluster as the tool reads it: a small `Cluster` protocol (tests use in-memory fakes) and
its adapter over the official kubernetes client, on the stack's kubeconfig file and context."""

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import config as kube_config

from cluster_secrets.errors import UsageError
from components import outputs
from components.versions import eso_api_version, parse_chart_version

Obj = dict[str, Any]
ESO_GROUP = "external-secrets.io"
TIMEOUT = 10  # seconds, for each request


class Cluster(Protocol):
    """Reads objects as the API serves them (camelCase JSON as dicts); None when there is none."""

    def deployment(self, namespace: str, name: str) -> Obj | None: ...
    def custom_object(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> Obj | None: ...
    def secret(self, namespace: str, name: str) -> Obj | None: ...
    def annotate(
        self, group: str, version: str, plural: str, name: str, namespace: str | None, annotations: dict[str, str]
    ) -> None: ...


class Api(Protocol):
    """Any object by its API path (`/api/v1/namespaces/x`, `/apis/group/version/...`), as the API serves it."""

    def get(self, path: str) -> Obj | None: ...
    def list(self, path: str, label_selector: str = "") -> list[Obj]: ...
    def merge_patch(self, path: str, body: Obj) -> None: ...


class LiveCluster(Cluster, Api, Protocol):
    """Both ways of reading, as KubeCluster offers them (status reads typed objects and, for drift, paths)."""


# Kinds without a namespace, of those the program and the reference setup make.
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ClusterSecretStore",
    "PriorityClass",
}

# Kinds whose plural is not the kind in lower case plus "s".
_PLURALS = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies", "PodSecurityPolicy": "podsecuritypolicies"}


def object_path(api_version: str, kind: str, name: str, namespace: str | None = None) -> str:
    """The API path of an object."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{_PLURALS.get(kind, kind.lower() + 's')}/{name}"


class ClusterError(Exception):
    """The cluster could not be read (unreachable, forbidden, bad kubeconfig): exit code 2."""


def eso_version(stack_outputs: Mapping[str, Any]) -> str | None:
    """The external-secrets.io API version (v1beta1 or v1) for the ESO chart the stack deployed."""
    try:
        chart = parse_chart_version(str((stack_outputs.get(outputs.CHART_VERSIONS) or {})["externalSecrets"]))
    except (KeyError, TypeError, ValueError):
        return None
    return eso_api_version(chart).split("/")[1]


class KubeCluster:
    """`Cluster` and `Api` over the official kubernetes client, on one kubeconfig file and context: every
    request by API path, through one `_call`."""

    def __init__(self, kubeconfig: str, context: str):
        # A kubeconfig with insecure-skip-tls-verify is the user's choice, made once: kubectl does not
        # warn about it on every request, and neither does status.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        try:
            api_client = kube_config.new_client_from_config(
                config_file=kubeconfig, context=context, persist_config=False
            )
        except kube_config.ConfigException as error:
            raise ClusterError(f"cannot use context {context!r} of kubeconfig {kubeconfig}: {error}") from None
        self.client = api_client

    def _call(
        self, method: str, path: str, body: Obj | None = None, query: list[Any] | None = None, what: str = ""
    ) -> Any:
        """One request by path (the generated client's own serializer adds the host and the credentials);
        None for 404, ClusterError for any other failure, named by `what` (else the method and path)."""
        what = what or f"{method} {path}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            request = self.client.param_serialize(
                method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = self.client.call_api(*request, _request_timeout=TIMEOUT)
            response.read()
        except Exception as error:  # urllib3's connection errors, timeouts
            raise ClusterError(f"{what}: {type(error).__name__}: {error}") from None
        if response.status == 404:
            return None
        if not 200 <= response.status < 300:
            raise ClusterError(f"{what}: {response.status} {response.reason}")
        return json.loads(response.data or b"null")

    def get(self, path: str) -> Obj | None:
        return self._call("GET", path)

    def list(self, path: str, label_selector: str = "") -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        return list((self._call("GET", path, query=query) or {}).get("items") or [])

    def merge_patch(self, path: str, body: Obj) -> None:
        if self._call("PATCH", path, body=body) is None:
            raise ClusterError(f"PATCH {path}: not found")

    # `Cluster`: the same requests, named for people.
    def deployment(self, namespace: str, name: str) -> Obj | None:
        path = object_path("apps/v1", "Deployment", name, namespace)
        return self._call("GET", path, what=f"reading Deployment {namespace}/{name}")

    def custom_object(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        what = f"reading {_custom_name(group, version, plural, name, namespace)}"
        return self._call("GET", _custom_path(group, version, plural, name, namespace), what=what)

    def secret(self, namespace: str, name: str) -> Obj | None:
        path = object_path("v1", "Secret", name, namespace)
        return self._call("GET", path, what=f"reading Secret {namespace}/{name}")

    def annotate(
        self, group: str, version: str, plural: str, name: str, namespace: str | None, annotations: dict[str, str]
    ) -> None:
        """Merge `annotations` into a custom object's (a JSON merge patch); cluster-scoped without a namespace."""
        body = {"metadata": {"annotations": annotations}}
        what = f"annotating {_custom_name(group, version, plural, name, namespace)}"
        self._call("PATCH", _custom_path(group, version, plural, name, namespace), body=body, what=what)


def _custom_path(group: str, version: str, plural: str, name: str, namespace: str | None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{group}/{version}{scope}/{plural}/{name}"


def _custom_name(group: str, version: str, plural: str, name: str, namespace: str | None) -> str:
    return f"{plural}.{group}/{version} {namespace + '/' if namespace else ''}{name}"


def kubeconfig_paths(configured: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The kubeconfig chosen as written (kubeconfigPath; empty: $KUBECONFIG, a path list, then
    ~/.kube/config) and its files, expanded."""
    chosen = configured or environ.get("KUBECONFIG") or "~/.kube/config"
    return chosen, [os.path.expanduser(path) for path in chosen.split(os.pathsep) if path]


def kubeconfig_file(configured: str, environ: Mapping[str, str]) -> str:
    """The stack's kubeconfigPath; empty: $KUBECONFIG (a path list is merged), then ~/.kube/config."""
    chosen, paths = kubeconfig_paths(configured, environ)
    if not any(Path(path).is_file() for path in paths):
        raise UsageError(f"no kubeconfig file at {chosen} (kubeconfigPath in the stack file, else $KUBECONFIG).")
    return os.pathsep.join(paths)
