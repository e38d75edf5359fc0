"""What this stack's previous deployment recorded, read through a StackReference to itself."""

from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from components import outputs
from components.handoff import PreviousHandoff


def self_reference_name() -> str:
    """`<org>/<project>/<stack>`; on DIY backends (file, S3) the org is the literal `organization`."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def previous_handoff() -> PreviousHandoff:
    """argocdCreateSecret and argocdSecretSynced as the previous deployment exported them."""
    reference = pulumi.StackReference(self_reference_name())
    return PreviousHandoff(
        create_secret=_plain_output(reference, outputs.ARGOCD_CREATE_SECRET),
        synced=_plain_output(reference, outputs.ARGOCD_SECRET_SYNCED),
    )


def _plain_output(reference: pulumi.StackReference, name: str) -> Any:
    # The hand-off decides which resource depends on which, and the dependency graph must be
    # known when resources are declared, not inside an apply. So the value is awaited here, the
    # way the SDK itself awaits a plain invoke. It is read during preview as well.
    details = _sync_await(reference.get_output_details(name))
    return details.value
