"""The live cluster as the tool reads it: a small `Cluster` protocol (tests use in-memory fakes) and
its adapter over the official kubernetes client, on the stack's kubeconfig file and context."""

import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client as kube
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
    """`Cluster` over the official kubernetes client, on one kubeconfig file and context."""

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
        self.apps = kube.AppsV1Api(api_client)
        self.core = kube.CoreV1Api(api_client)
        self.custom = kube.CustomObjectsApi(api_client)

    def _read(self, what: str, call: Callable[[], Any]) -> Obj | None:
        try:
            found = call()
        except kube.ApiException as error:
            if error.status == 404:
                return None
            raise ClusterError(f"reading {what}: {error.status} {error.reason}") from None
        except Exception as error:  # urllib3's connection errors, timeouts
            raise ClusterError(f"reading {what}: {type(error).__name__}: {error}") from None
        return found if isinstance(found, dict) else self.client.sanitize_for_serialization(found)

    def _call(self, method: str, path: str, body: Obj | None = None, query: list[Any] | None = None) -> Any:
        """One request by path (the generated client's own serializer adds the host and the credentials);
        None for 404, ClusterError for any other failure."""
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
            raise ClusterError(f"{method} {path}: {type(error).__name__}: {error}") from None
        if response.status == 404:
            return None
        if not 200 <= response.status < 300:
            raise ClusterError(f"{method} {path}: {response.status} {response.reason}")
        return json.loads(response.data or b"null")

    def get(self, path: str) -> Obj | None:
        return self._call("GET", path)

    def list(self, path: str, label_selector: str = "") -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        return list((self._call("GET", path, query=query) or {}).get("items") or [])

    def merge_patch(self, path: str, body: Obj) -> None:
        if self._call("PATCH", path, body=body) is None:
            raise ClusterError(f"PATCH {path}: not found")

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self._read(
            f"Deployment {namespace}/{name}",
            lambda: self.apps.read_namespaced_deployment(name, namespace, _request_timeout=TIMEOUT),
        )

    def custom_object(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        what = f"{plural}.{group}/{version} {namespace + '/' if namespace else ''}{name}"
        if namespace is None:
            return self._read(
                what,
                lambda: self.custom.get_cluster_custom_object(group, version, plural, name, _request_timeout=TIMEOUT),
            )
        return self._read(
            what,
            lambda: self.custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=TIMEOUT
            ),
        )

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self._read(
            f"Secret {namespace}/{name}",
            lambda: self.core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT),
        )

    def annotate(
        self, group: str, version: str, plural: str, name: str, namespace: str | None, annotations: dict[str, str]
    ) -> None:
        """Merge `annotations` into a custom object's (a JSON merge patch); cluster-scoped without a namespace."""
        body = {"metadata": {"annotations": annotations}}
        what = f"{plural}.{group}/{version} {namespace + '/' if namespace else ''}{name}"
        if namespace is None:
            self._read(
                what,
                lambda: self.custom.patch_cluster_custom_object(
                    group, version, plural, name, body, _request_timeout=TIMEOUT
                ),
            )
        else:
            self._read(
                what,
                lambda: self.custom.patch_namespaced_custom_object(
                    group, version, namespace, plural, name, body, _request_timeout=TIMEOUT
                ),
            )


def kubeconfig_file(configured: str, environ: Mapping[str, str]) -> str:
    """The stack's kubeconfigPath; empty: $KUBECONFIG (a path list is merged), then ~/.kube/config."""
    chosen = configured or environ.get("KUBECONFIG") or "~/.kube/config"
    paths = [os.path.expanduser(path) for path in chosen.split(os.pathsep) if path]
    if not any(Path(path).is_file() for path in paths):
        raise UsageError(f"no kubeconfig file at {chosen} (kubeconfigPath in the stack file, else $KUBECONFIG).")
    return os.pathsep.join(paths)
