"""OnePasswordConnect: 1Password Connect in the cluster, fed from the init vault."""

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.chart_values import merge_values
from components.config import StackConfig
from components.kube import helm_release, owned
from components.versions import connect_credentials_value

# FACTS.md (Connect): the chart's Service is `onepassword-connect` in the release namespace, API on 8080.
SERVICE_NAME = "onepassword-connect"
API_PORT = 8080
# On Connect's pods: changes with the credentials file or the token, so that Connect restarts on them.
CREDENTIALS_DIGEST = "cluster-secrets.io/credentials-digest"


def credentials_digest(credentials_json: str, token: str) -> str:
    """A one-way digest of Connect's credentials and token, for the pod annotation.

    FACTS.md (the real 1Password provider): Connect never sees a changed credentials Secret by
    itself; chart 1.17.0 reads it into an environment variable at start, 2.4.1 mounts it with
    subPath, and neither template carries a checksum. A pod annotation that changes with them makes
    the Deployment roll. It is a SHA-256, which tells nothing of the values, so it may stay plain.
    """
    digest = hashlib.sha256(b"cluster-secrets connect\0" + credentials_json.encode() + b"\0" + token.encode())
    return f"sha256:{digest.hexdigest()}"


def connect_host(namespace: str) -> str:
    """The in-cluster URL of the Connect API."""
    return f"http://{SERVICE_NAME}.{namespace}.svc.cluster.local:{API_PORT}"


def effective_connect_host(config: StackConfig) -> str:
    """The Connect server the store reads: the stack's own, another one (external-connect), or none
    (a service account: "")."""
    return {"connect": connect_host(config.connect_namespace), "external-connect": config.connect_host}.get(
        config.onepassword_access, ""
    )


def connect_values(credentials_secret: str, credentials_key: str) -> dict[str, Any]:
    """Helm values: use our existing credentials Secret (no credentials in values) behind a ClusterIP.

    FACTS.md (Connect): with neither `connect.credentials` nor `connect.credentials_base64` set the
    chart creates no Secret and reads ours; `serviceType` defaults to NodePort in chart 1.x, which
    would expose the API on every node, so it is set explicitly.
    """
    return {
        "connect": {
            "credentialsName": credentials_secret,
            "credentialsKey": credentials_key,
            "serviceType": "ClusterIP",
        },
    }


@dataclass(frozen=True)
class OnePasswordConnectArgs:
    config: StackConfig
    credentials_json: pulumi.Input[str]  # secret
    token: pulumi.Input[str]  # secret: the Connect token ESO uses, issued for this server


class OnePasswordConnect(pulumi.ComponentResource):
    host: pulumi.Output[str]

    def __init__(self, name: str, args: OnePasswordConnectArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cluster-secrets:index:OnePasswordConnect", name, None, opts)
        config = args.config
        chart = config.connect_chart
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=owned({"name": config.connect_namespace}), opts=child
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=owned({"name": config.connect_credentials_secret, "namespace": namespace.metadata.name}),
            type="Opaque",
            string_data={
                config.connect_credentials_key: pulumi.Output.secret(args.credentials_json).apply(
                    lambda text: connect_credentials_value(chart.parsed, text.encode("utf-8"))
                )
            },
            opts=child,
        )
        # The user's values over ours; the paths we own were refused with the config.
        values = merge_values(
            connect_values(config.connect_credentials_secret, config.connect_credentials_key), config.connect_values
        )
        digest = pulumi.Output.all(args.credentials_json, args.token).apply(lambda v: credentials_digest(v[0], v[1]))
        # Not a secret (see credentials_digest): unsecret, or every value of the release would be masked.
        values["connect"].setdefault("podAnnotations", {})[CREDENTIALS_DIGEST] = pulumi.Output.unsecret(digest)
        release = helm_release(
            f"{name}-release",
            "connect",
            "connect",
            chart,
            namespace.metadata.name,
            values,
            pulumi.ResourceOptions(parent=self, depends_on=[credentials]),
        )
        # Derived from the release, so whoever uses the host waits for Connect to be installed.
        self.host = release.status.namespace.apply(lambda ns: connect_host(ns or config.connect_namespace))
        self.register_outputs({"host": self.host})
