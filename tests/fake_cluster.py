"""An in-memory cluster for the tool's cluster reads (cluster_secrets.kube.Cluster): a healthy
converged homelab stack, objects keyed as the adapter asks for them."""

import base64
import copy
from typing import Any

from cluster_secrets.kube import ESO_GROUP, Obj

CANARY_HASH = "$2b$10$canary-bcrypt-hash-of-the-admin-password"
CANARY_KEY = "canary-server-secretkey-0123456789abcdef"
MTIME = "2026-11-28T09:00:00Z"
ES_UID = "0000-es-uid"
SYNCED_AT = "2026-11-28T10:00:00Z"
CONNECT_NAMESPACE = "/api/v1/namespaces/onepassword"
CONNECT_DEPLOYMENT = "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ready(reason: str = "Ready", ok: bool = True) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True" if ok else "False", "reason": reason}]}


class FakeCluster:
    """`Cluster` over dicts: objects keyed as the adapter asks for them."""

    def __init__(self, eso_version: str = "v1beta1"):
        group = ESO_GROUP
        self.annotated: list[tuple[str, str | None, str, dict[str, str]]] = []
        self.paths: dict[str, Obj] = {}
        self.lists: dict[tuple[str, str], list[Obj]] = {}
        self.patched: list[tuple[str, Obj]] = []
        self.objects: dict[tuple[Any, ...], Obj] = {
            ("deployment", "onepassword", "onepassword-connect"): {
                "spec": {"replicas": 1},
                "status": {"readyReplicas": 1},
            },
            ("deployment", "argocd", "argocd-server"): {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}},
            ("deployment", "eso", "external-secrets"): {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}},
            (group, eso_version, "clustersecretstores", "one-secretstore", None): {"status": ready("Valid")},
            (group, eso_version, "externalsecrets", "argocd-secret", "argocd"): {
                "metadata": {"uid": ES_UID},
                "spec": {"refreshInterval": "1h"},
                "status": {**ready("SecretSynced"), "refreshTime": SYNCED_AT},
            },
            ("secret", "argocd", "argocd-secret"): {
                "metadata": {
                    "annotations": {"helm.sh/resource-policy": "keep"},
                    "ownerReferences": [
                        {
                            "apiVersion": f"{group}/{eso_version}",
                            "kind": "ExternalSecret",
                            "name": "argocd-secret",
                            "uid": ES_UID,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "data": {
                    "admin.password": b64(CANARY_HASH),
                    "admin.passwordMtime": b64(MTIME),
                    "server.secretkey": b64(CANARY_KEY),
                },
            },
        }

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return copy.deepcopy(self.objects.get(("deployment", namespace, name)))

    def custom_object(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        return copy.deepcopy(self.objects.get((group, version, plural, name, namespace)))

    def secret(self, namespace: str, name: str) -> Obj | None:
        return copy.deepcopy(self.objects.get(("secret", namespace, name)))

    def annotate(
        self, group: str, version: str, plural: str, name: str, namespace: str | None, annotations: dict[str, str]
    ) -> None:
        found = self.objects[(group, version, plural, name, namespace)]
        found.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
        self.annotated.append((plural, namespace, name, dict(annotations)))

    # Objects by API path (cluster_secrets.kube.Api): the cluster's other objects, empty unless a test
    # puts some there; `lists` answers list requests by (path, label selector).
    def get(self, path: str) -> Obj | None:
        return copy.deepcopy(self.paths.get(path))

    def list(self, path: str, label_selector: str = "") -> list[Obj]:
        return copy.deepcopy(self.lists.get((path, label_selector), []))

    def merge_patch(self, path: str, body: Obj) -> None:
        self.patched.append((path, body))

    def object(self, *key: Any) -> Obj:
        return self.objects[key]
