"""Small pieces shared by the Kubernetes components."""

from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from components.config import Chart
from components.versions import ESO_API_VERSIONS

T = TypeVar("T")

# FACTS.md (Helm): Helm skips deleting an object that carries this annotation.
KEEP = {"helm.sh/resource-policy": "keep"}
# FACTS.md (pulumi-kubernetes): without `waitFor` a custom resource is not awaited; `timeoutSeconds`
# bounds the wait. A store or ExternalSecret syncs in seconds once ESO and Connect are up, so five
# minutes, not the provider's default ten, before `up` fails naming the object (measured by the
# end-to-end suite: a stopped ESO otherwise held `up` for ten minutes).
WAIT_READY = {"pulumi.com/waitFor": "condition=Ready", "pulumi.com/timeoutSeconds": "300"}
# pulumi-kubernetes applies these objects server-side, and an apply fails on a field another field
# manager set (an object made with kubectl and taken over by adopt; one edited by hand) unless it is
# forced (pulumi-kubernetes' "handle field conflicts on existing resources"). Every object the program
# applies itself is its own, so its apply is forced.
FORCE_APPLY = {"pulumi.com/patchForce": "true"}


def owned(metadata: dict[str, Any]) -> Any:  # a metadata map, as ObjectMetaArgsDict or a manifest takes it
    """`metadata` of an object the program applies itself: with FORCE_APPLY among its annotations."""
    return {**metadata, "annotations": {**metadata.get("annotations", {}), **FORCE_APPLY}}


def once_created(resource: pulumi.CustomResource, value: T) -> pulumi.Output[T]:
    """`value`, carrying a dependency on `resource`: whoever uses it waits for the resource."""
    return resource.id.apply(lambda _: value)


def external_secrets_object(
    resource_name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """An ESO custom resource from its manifest, aliased across ESO's API versions.

    The API version is part of the Pulumi type token, so a chart upgrade from v1beta1 to v1 would
    otherwise create a "new" resource and delete the old one: the same Kubernetes object. Deleting
    the ExternalSecret would also garbage-collect argocd-secret (FACTS.md, ESO). With the aliases the
    upgrade is an update in place.
    """
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    aliases: list[pulumi.Input[str | pulumi.Alias]] = [
        pulumi.Alias(type_=f"kubernetes:{other}:{kind}") for other in ESO_API_VERSIONS if other != api_version
    ]
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=api_version,
        kind=kind,
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases)),
    )


def helm_release(
    resource_name: str,
    release_name: str,
    chart_name: str,
    chart: Chart,
    namespace: pulumi.Input[str],
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A real Helm release (hooks run, `helm list` sees it) of a chart pinned in stack config.

    The release name is fixed, so the objects the chart names after it keep their names.
    """
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        chart=chart_name,
        version=chart.version,
        repository_opts={"repo": chart.repository},
        namespace=namespace,
        values=values,
        opts=opts,
    )
