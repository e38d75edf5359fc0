"""Other deployments this stack reads: its own previous one, and the primary stack it follows."""

from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from components import outputs
from components.argocd import AdminItems
from components.config import CHART_VERSION_KEYS, PROJECT, StackConfig
from components.errors import ConfigError
from components.handoff import PreviousHandoff


def self_reference_name() -> str:
    """`<org>/<project>/<stack>`; on DIY backends (file, S3) the org is the literal `organization`."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def _output_details(reference: pulumi.StackReference, name: str) -> pulumi.StackReferenceOutputDetails:
    # These values decide what is declared (versions, which resources depend on which), and that
    # must be known when resources are declared, not inside an apply. So the output is awaited
    # here, the way the SDK itself awaits a plain invoke. It is read during preview as well.
    return _sync_await(reference.get_output_details(name))


def previous_handoff() -> PreviousHandoff:
    """argocdCreateSecret and argocdSecretSynced as this stack's previous deployment exported them."""
    reference = pulumi.StackReference(self_reference_name())
    return PreviousHandoff(
        create_secret=_output_details(reference, outputs.ARGOCD_CREATE_SECRET).value,
        synced=_output_details(reference, outputs.ARGOCD_SECRET_SYNCED).value,
    )


class PrimaryStack:
    """The stack a secondary cluster follows (`primaryStack`), read through a StackReference.

    Every output this stack needs is checked up front, so a missing stack or output stops the
    program at preview, before anything is registered, naming both.
    """

    def __init__(self, name: str):
        # The name's shape was checked with the rest of the config (components/config.py).
        self.name = name
        self.reference = pulumi.StackReference(name)

    def _require_plain(self, output: str) -> Any:
        try:
            details = _output_details(self.reference, output)
        except Exception as error:
            message = f"{PROJECT}:primaryStack: could not read stack {self.name!r} (is the name right?): {error}"
            # The failed read also ends the run with the engine's own error; logging this first
            # puts the config key beside it.
            pulumi.log.error(message)
            raise ConfigError(message) from None
        value = details.value if details.value is not None else details.secret_value
        if value is None:
            raise ConfigError(
                f"{PROJECT}:primaryStack: stack {self.name!r} has no output {output!r} "
                "(has it been deployed, with this version of cluster-secrets?)"
            )
        return value

    def chart_versions(self) -> dict[str, str]:
        """Chart versions the primary runs, by the config key that would pin them here."""
        versions = self._require_plain(outputs.CHART_VERSIONS)
        return {key: versions[chart] for chart, key in CHART_VERSION_KEYS.items() if chart in versions}

    def shared_admin_items(self, config: StackConfig) -> AdminItems | None:
        """The primary's Argo CD admin items where this stack shares them (`shareArgocdAdmin`), else
        None: this stack owns its own, which must not be the primary's. Every 1Password item has
        exactly one owner."""
        vault = self._require_plain(outputs.ARGOCD_SECRET_ITEM_VAULT)
        titles = {
            self._require_plain(outputs.ARGOCD_SECRET_ITEM_TITLE),
            self._require_plain(outputs.ARGOCD_ADMIN_ITEM_TITLE),
        }
        if not config.share_argocd_admin:
            ours = {"argocdSecretItem": config.argocd_secret_item, "argocdAdminItem": config.argocd_admin_item}
            for key, title in ours.items():
                if config.working_vault == vault and title in titles:
                    raise ConfigError(
                        f"{PROJECT}:{key}: {title!r} in vault {vault!r} is the primary stack's item; "
                        "give this stack its own title, or set shareArgocdAdmin: true to use the primary's"
                    )
            return None
        if vault not in config.store_vaults:
            raise ConfigError(
                f"{PROJECT}:storeVaults: must include {vault!r}, the vault of the primary's argocd-secret item"
            )
        self._require_plain(outputs.ARGOCD_ADMIN_PASSWORD)
        self._require_plain(outputs.ARGOCD_SECRET_REVISION)
        return AdminItems(
            vault=vault,
            secret_item_title=self.reference.require_output(outputs.ARGOCD_SECRET_ITEM_TITLE),
            admin_item_title=self.reference.require_output(outputs.ARGOCD_ADMIN_ITEM_TITLE),
            # require_output keeps an output the primary exported as secret a secret.
            admin_password=self.reference.require_output(outputs.ARGOCD_ADMIN_PASSWORD),
            # Absent from a primary deployed before this output existed: then unknown, not an error.
            password_mtime=self.reference.get_output(outputs.ARGOCD_ADMIN_PASSWORD_MTIME),
            # The primary's rotations re-sync this cluster's ExternalSecret at its next deployment.
            revision=self.reference.require_output(outputs.ARGOCD_SECRET_REVISION),
            # What the tool compares this cluster's argocd-secret with; absent from an older primary.
            digests=pulumi.Output.secret(self.reference.get_output(outputs.ARGOCD_ITEM_DIGESTS)),
        )
