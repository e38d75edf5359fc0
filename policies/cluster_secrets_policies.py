"""Policies for cluster-secrets stacks (Pulumi CrossGuard). Each names the resource and the
field at fault, never a value.

What a policy cannot see: pulumi-policy hands a policy the resource's inputs with secrets already
decrypted and unmarked, so no policy can tell a Pulumi secret from plaintext. Secrecy of every
credential the program handles is checked by its tests instead; here, credentials are refused
where they never belong: in Helm values, which Helm keeps in its release records.
"""

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

RELEASE_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
# An exact SemVer version: no range, no "latest", no wildcard.
PINNED_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# Value keys that hold a credential when they hold a string.
CREDENTIAL_KEY = re.compile(
    r"(password|passwd|token|secret|secretkey|credentials?|credentials_base64|apikey|api_key|privatekey)$",
    re.IGNORECASE,
)


def _get(props: Mapping[str, Any], *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _chart(props: Mapping[str, Any]) -> str:
    return str(props.get("chart") or "").rsplit("/", 1)[-1]


def _credential_paths(values: Any, path: str = "", parent: str = "") -> Iterator[str]:
    """Paths of non-empty strings held under a credential key, or as the `value` of one
    (`operator.token.value` in the Connect chart)."""
    if isinstance(values, Mapping):
        for key, value in values.items():
            here = f"{path}.{key}" if path else str(key)
            named = CREDENTIAL_KEY.search(str(key)) or (key == "value" and CREDENTIAL_KEY.search(parent))
            if isinstance(value, str) and value and named:
                yield here
            else:
                yield from _credential_paths(value, here, str(key))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            yield from _credential_paths(value, f"{path}[{index}]", parent)


def helm_release_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in RELEASE_TYPES:
        return
    version = args.props.get("version")
    if not isinstance(version, str) or not PINNED_VERSION.match(version):
        report(f"Helm chart {_chart(args.props)!r} ({args.name}) is not pinned to an exact version: {version!r}.", None)


def no_credentials_in_helm_values(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in RELEASE_TYPES:
        return
    for path in _credential_paths(args.props.get("values") or {}):
        report(
            f"Helm values of {args.name} carry a credential at {path}: Helm stores values in clear in its "
            "release records; put it in a Secret the chart references instead.",
            None,
        )


def connect_service_cluster_ip(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in RELEASE_TYPES and _chart(args.props) == "connect":
        service_type = _get(args.props, "values", "connect", "serviceType")
        version = str(args.props.get("version") or "")
        # FACTS.md (Connect): the chart's default is NodePort in 1.x and ClusterIP from 2.0.0.
        default = "NodePort" if version.lstrip("v").startswith(("0.", "1.")) or not version else "ClusterIP"
        if (service_type or default) != "ClusterIP":
            report(f"1Password Connect ({args.name}) is exposed as {service_type or default}, not ClusterIP.", None)
    elif (
        args.resource_type == "kubernetes:core/v1:Service"
        and _get(args.props, "metadata", "name") == "onepassword-connect"
    ):
        service_type = _get(args.props, "spec", "type") or "ClusterIP"
        if service_type != "ClusterIP":
            report(f"The 1Password Connect Service ({args.name}) is {service_type}, not ClusterIP.", None)


def store_has_namespace_conditions(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.resource_type.endswith(":ClusterSecretStore") or not args.resource_type.startswith(
        "kubernetes:external-secrets.io/"
    ):
        return
    if not _get(args.props, "spec", "conditions"):
        report(f"ClusterSecretStore {args.name} has no namespace conditions: every namespace can use it.", None)


def argocd_secret_kept_and_labelled(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.resource_type.startswith("kubernetes:external-secrets.io/") or not args.resource_type.endswith(
        ":ExternalSecret"
    ):
        return
    target = _get(args.props, "spec", "target") or {}
    if (target.get("name") or _get(args.props, "metadata", "name")) != "argocd-secret":
        return
    metadata = _get(target, "template", "metadata") or {}
    if (metadata.get("annotations") or {}).get("helm.sh/resource-policy") != "keep":
        report(
            f"ExternalSecret {args.name} makes argocd-secret without helm.sh/resource-policy: keep in its "
            "template: Helm would delete the Secret when createSecret turns false.",
            None,
        )
    if (metadata.get("labels") or {}).get("app.kubernetes.io/part-of") != "argocd":
        report(
            f"ExternalSecret {args.name} makes argocd-secret without the label app.kubernetes.io/part-of: "
            "argocd in its template: Argo CD 3.5 and later would not read it.",
            None,
        )


POLICIES = [
    ResourceValidationPolicy(
        name="helm-release-pinned-version",
        description="Every Helm chart is pinned to an exact version.",
        validate=helm_release_pinned,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="no-credentials-in-helm-values",
        description="Helm values carry no credential (passwords, tokens, keys, credentials files).",
        validate=no_credentials_in_helm_values,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="connect-service-cluster-ip",
        description="1Password Connect is reachable inside the cluster only (a ClusterIP Service).",
        validate=connect_service_cluster_ip,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="cluster-secret-store-namespace-conditions",
        description="A ClusterSecretStore says which namespaces may use it.",
        validate=store_has_namespace_conditions,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    ResourceValidationPolicy(
        name="argocd-secret-kept-and-labelled",
        description="The ExternalSecret behind argocd-secret keeps the Secret from Helm and labels it for Argo CD.",
        validate=argocd_secret_kept_and_labelled,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
