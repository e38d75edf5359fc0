"""Small pieces shared by the Kubernetes components."""

from typing import TypeVar

import pulumi

T = TypeVar("T")

# FACTS.md (Helm): Helm skips deleting an object that carries this annotation.
KEEP = {"helm.sh/resource-policy": "keep"}
# FACTS.md (pulumi-kubernetes): without this annotation a custom resource is not awaited.
WAIT_READY = {"pulumi.com/waitFor": "condition=Ready"}


def once_created(resource: pulumi.CustomResource, value: T) -> pulumi.Output[T]:
    """`value`, carrying a dependency on `resource`: whoever uses it waits for the resource."""
    return resource.id.apply(lambda _: value)
