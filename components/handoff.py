"""The argocd-secret hand-off from Argo CD's chart to ESO. Pure: no Pulumi runtime.

FACTS.md (Helm): `helm install` refuses to create a Secret that exists without its ownership
metadata, so ESO must adopt the chart's Secret, never the other way round; and flipping
`createSecret` to false makes Helm delete `argocd-secret` unless the live Secret carries
`helm.sh/resource-policy: keep`. FACTS.md (Argo CD): argocd-server exits at start without it.
"""

from dataclasses import dataclass

from components.config import CreateSecretMode


@dataclass(frozen=True)
class Handoff:
    # configs.secret.createSecret for the Argo CD chart.
    create_secret: bool
    # True: the ExternalSecret is Ready before Argo CD is installed or upgraded (Argo CD depends on
    # it). False: the ExternalSecret comes after the Argo CD release and adopts the chart's Secret.
    external_secret_first: bool


@dataclass(frozen=True)
class PreviousHandoff:
    """The hand-off outputs of the previous deployment; None where it exported none (a new stack)."""

    create_secret: bool | None = None
    synced: bool | None = None


def decide_handoff(mode: CreateSecretMode, previous: PreviousHandoff) -> Handoff:
    """What this deployment applies, given the mode and the previous deployment's outputs.

    `auto` starts with the chart's Secret (Argo CD runs at once) and hands over to ESO once a
    deployment recorded the ExternalSecret as synced. It never goes back: once createSecret was
    false, the chart must not try to own a Secret that ESO now owns.
    """
    if mode == "true":
        return Handoff(create_secret=True, external_secret_first=False)
    if mode == "false":
        return Handoff(create_secret=False, external_secret_first=True)
    handed_over = previous.synced is True or previous.create_secret is False
    return Handoff(create_secret=not handed_over, external_secret_first=handed_over)
