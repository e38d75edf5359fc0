"""A second cluster wired to the first: the homelab-2 stack reading the homelab stack's outputs."""

import pytest

from cluster_secrets.offline import StackOutputs, plaintext_strings
from components import outputs
from components.errors import ConfigError
from tests.conftest import CANARY_TOKEN, CREDENTIALS_TEXT, Run, attached_file, default_vaults, fakes, run_stack

PRIMARY = "organization/cluster-secrets/homelab"
PRIMARY_PASSWORD = "primary-admin-password-canary"
PRIMARY_OUTPUTS = {
    outputs.CONNECT_HOST: "http://onepassword-connect.onepassword.svc.cluster.local:8080",
    outputs.SECRET_STORE_NAME: "one-secretstore",
    outputs.ARGOCD_NAMESPACE: "argocd",
    outputs.ARGOCD_CREATE_SECRET: False,
    outputs.ARGOCD_SECRET_SYNCED: True,
    outputs.ARGOCD_ADMIN_PASSWORD: PRIMARY_PASSWORD,
    outputs.ARGOCD_SECRET_ITEM_VAULT: "HomeLab",
    outputs.ARGOCD_SECRET_ITEM_TITLE: "argocd-secret-of-the-primary",
    outputs.ARGOCD_ADMIN_ITEM_TITLE: "argo-admin-of-the-primary",
    outputs.ARGOCD_SECRET_REVISION: "password-3.secretkey-1",
    outputs.ARGOCD_ITEM_DIGESTS: {"secretItem": {"admin.password": "sha256:of-the-primary"}},
    outputs.CHART_VERSIONS: {"connect": "1.17.0", "externalSecrets": "0.12.1", "argocd": "9.4.2"},
}


def second_vaults() -> dict:
    vaults = default_vaults()
    vaults["InitHomeLab"].update(
        {
            "1password-credentials-homelab-2": {"files": [attached_file(CREDENTIALS_TEXT.encode())]},
            "onepassword-connect-token-homelab-2": {"password": CANARY_TOKEN},
        }
    )
    return vaults


def run_second(config: dict | None = None, primary: dict | None = None, **kwargs) -> Run:
    stacks = {
        PRIMARY: StackOutputs(
            PRIMARY_OUTPUTS if primary is None else primary,
            frozenset({outputs.ARGOCD_ADMIN_PASSWORD, outputs.ARGOCD_ITEM_DIGESTS}),
        )
    }
    monitor = fakes(second_vaults(), kwargs.pop("previous_outputs", None))
    monitor.mocks.other_stacks = stacks
    return run_stack("homelab-2", config=config, monitor=monitor, **kwargs)


@pytest.fixture(scope="module")
def second() -> Run:
    return run_second()


def test_sharing_registers_no_1password_item_and_no_password(second):
    types = {r.type for r in second.registrations}
    assert not any(t.startswith(("onepassword:", "random:", "time:")) for t in types)
    assert len(second.registrations) == 14


def test_every_kubernetes_object_is_the_second_stacks_own(second):
    provider = second.one("pulumi:providers:kubernetes")
    assert provider.plain["context"] == "homelab-2"
    kubernetes = [r for r in second.registrations if r.type.startswith("kubernetes:")]
    assert len(kubernetes) == 10
    assert all(r.provider.startswith(provider.urn + "::") for r in kubernetes)


def test_its_external_secret_reads_the_primarys_item(second):
    data = second.named("argocd-external-secret").plain["spec"]["data"]
    assert {entry["remoteRef"]["key"] for entry in data} == {"argocd-secret-of-the-primary"}
    reference = next(r for r in second.monitor.reads if r.name == PRIMARY)
    assert reference.urn in second.named("argocd-external-secret").dependencies


def test_its_external_secret_re_syncs_on_the_primarys_rotations(second):
    annotations = second.named("argocd-external-secret").plain["metadata"]["annotations"]
    assert annotations["force-sync"] == "password-3.secretkey-1"
    assert second.outputs[outputs.ARGOCD_SECRET_REVISION] == "password-3.secretkey-1"


def test_outputs_point_at_the_primarys_items_and_its_password_stays_secret(second):
    assert second.outputs[outputs.ARGOCD_SECRET_ITEM_VAULT] == "HomeLab"
    assert second.outputs[outputs.ARGOCD_SECRET_ITEM_TITLE] == "argocd-secret-of-the-primary"
    assert second.outputs[outputs.ARGOCD_ADMIN_ITEM_TITLE] == "argo-admin-of-the-primary"
    assert second.outputs[outputs.ARGOCD_ADMIN_PASSWORD] == PRIMARY_PASSWORD
    assert outputs.ARGOCD_ADMIN_PASSWORD in second.secret_outputs
    # What the tool compares this cluster's argocd-secret with: the primary's, kept secret.
    assert second.outputs[outputs.ARGOCD_ITEM_DIGESTS] == PRIMARY_OUTPUTS[outputs.ARGOCD_ITEM_DIGESTS]
    assert outputs.ARGOCD_ITEM_DIGESTS in second.secret_outputs
    for urn, registered in second.monitor.registered_outputs.items():
        assert all(PRIMARY_PASSWORD not in text for _, text in plaintext_strings(registered)), urn


def test_versions_follow_the_primary_unless_pinned(second):
    releases = {r.name: r.plain["version"] for r in second.by_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {"connect-release": "2.4.1", "external-secrets-release": "2.9.0", "argocd-release": "9.4.2"}
    assert second.outputs[outputs.CHART_VERSIONS] == {"connect": "2.4.1", "externalSecrets": "2.9.0", "argocd": "9.4.2"}
    assert second.named("external-secrets-store").plain["apiVersion"] == "external-secrets.io/v1"


def test_the_followed_eso_version_decides_the_api_version():
    run = run_second(config={"esoChartVersion": ""})
    assert run.one("kubernetes:external-secrets.io/v1beta1:ClusterSecretStore")
    assert run.outputs[outputs.CHART_VERSIONS]["externalSecrets"] == "0.12.1"


def test_its_own_hand_off_reads_its_own_history():
    run = run_second(previous_outputs={outputs.ARGOCD_CREATE_SECRET: True, outputs.ARGOCD_SECRET_SYNCED: True})
    assert run.named("argocd-release").plain["values"]["configs"]["secret"]["createSecret"] is False
    assert sorted(r.name for r in run.monitor.reads) == [PRIMARY, "organization/cluster-secrets/homelab-2"]


def test_own_admin_items_are_the_second_stacks_and_not_the_primarys():
    own = {
        "shareArgocdAdmin": False,
        "argocdSecretItem": "argocd-secret-homelab-2",
        "argocdAdminItem": "argo-admin-homelab-2",
    }
    run = run_second(config=own)
    items = {r.plain["title"] for r in run.by_type("onepassword:index/item:Item")}
    assert items == {"argocd-secret-homelab-2", "argo-admin-homelab-2"}
    assert run.outputs[outputs.ARGOCD_ADMIN_PASSWORD] != PRIMARY_PASSWORD


def test_owning_an_item_the_primary_owns_is_refused():
    taken = {"shareArgocdAdmin": False, "argocdSecretItem": "argocd-secret-of-the-primary"}
    with pytest.raises(
        ConfigError, match="argocdSecretItem: 'argocd-secret-of-the-primary' in vault 'HomeLab' is the primary"
    ):
        run_second(config=taken)


def test_sharing_needs_the_primarys_vault_in_the_store():
    with pytest.raises(ConfigError, match="storeVaults: must include 'HomeLab'"):
        run_second(config={"storeVaults": {"Other": 1}})


def test_a_missing_primary_stack_is_named_and_nothing_is_registered():
    monitor = fakes(second_vaults())
    with pytest.raises(Exception, match=f"unknown stack '{PRIMARY}'"):
        run_stack("homelab-2", monitor=monitor)
    assert (
        "error",
        f"cluster-secrets:primaryStack: could not read stack '{PRIMARY}' (is the name right?): "
        f"unknown stack '{PRIMARY}'",
    ) in monitor.log.messages
    assert monitor.registrations == []


@pytest.mark.parametrize(
    "missing",
    [
        outputs.CHART_VERSIONS,
        outputs.ARGOCD_SECRET_ITEM_TITLE,
        outputs.ARGOCD_ADMIN_PASSWORD,
        outputs.ARGOCD_SECRET_REVISION,
    ],
)
def test_a_missing_primary_output_is_named_and_nothing_is_registered(missing):
    monitor = fakes(second_vaults())
    monitor.mocks.other_stacks = {PRIMARY: StackOutputs({k: v for k, v in PRIMARY_OUTPUTS.items() if k != missing})}
    with pytest.raises(ConfigError, match=f"stack '{PRIMARY}' has no output '{missing}'"):
        run_stack("homelab-2", monitor=monitor)
    assert monitor.registrations == []


def test_a_malformed_primary_name_is_refused():
    with pytest.raises(ConfigError, match="primaryStack: 'homelab' is not a stack name"):
        run_second(config={"primaryStack": "homelab"})


def test_a_primary_deployed_before_item_digests_leaves_them_unknown_not_an_error():
    older = {k: v for k, v in PRIMARY_OUTPUTS.items() if k != outputs.ARGOCD_ITEM_DIGESTS}
    assert run_second(primary=older).outputs[outputs.ARGOCD_ITEM_DIGESTS] is None
