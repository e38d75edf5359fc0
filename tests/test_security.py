"""Least privilege, rotation, and faults."""

import pytest

from components import outputs
from components.errors import ConfigError
from tests.conftest import CANARY_TOKEN, Run, default_vaults, fakes, run_stack

LABEL = "cluster-secrets.io/secret-store"


def changed(before: Run, after: Run) -> set[str]:
    """Resources whose inputs differ between two runs."""
    inputs = {r.name: r.inputs for r in before.registrations}
    return {r.name for r in after.registrations if inputs.get(r.name) != r.inputs}


# The store serves only the namespaces allowed to use it.


def test_listed_namespaces_may_use_the_store_too():
    run = run_stack(config={"storeNamespaces": ["apps", "monitoring"]})
    assert run.named("external-secrets-store").plain["spec"]["conditions"] == [
        {"namespaceSelector": {"matchLabels": {LABEL: "one-secretstore"}}},
        {"namespaces": ["apps", "monitoring"]},
    ]


def test_the_argocd_namespace_carries_the_stores_label(homelab):
    labels = homelab.named("argocd-namespace").plain["metadata"]["labels"]
    assert labels == {LABEL: homelab.outputs[outputs.SECRET_STORE_NAME]}


def test_an_open_store_has_no_conditions_and_is_warned_about():
    monitor = fakes()
    run = run_stack(config={"storeOpenToAllNamespaces": True}, monitor=monitor)
    assert "conditions" not in run.named("external-secrets-store").plain["spec"]
    warnings = [message for severity, message in monitor.log.messages if severity == "warning"]
    assert any("open to every namespace" in message for message in warnings)


def test_a_restricted_store_is_not_warned_about():
    monitor = fakes()
    run_stack(monitor=monitor)
    assert not any(severity == "warning" for severity, _ in monitor.log.messages)


@pytest.mark.parametrize("value", [["Not_A_Namespace"], "apps", [1]])
def test_bad_store_namespaces_are_refused(value):
    with pytest.raises(ConfigError, match="cluster-secrets:storeNamespaces"):
        run_stack(config={"storeNamespaces": value})


# Rotation.


def test_rotating_the_admin_password_renews_it_and_re_syncs_at_once(homelab):
    rotated = run_stack(config={"argocdAdminPasswordRotation": 1})
    assert rotated.named("argocd-admin-password").plain["keepers"] == {"rotation": "1"}
    annotations = rotated.named("argocd-external-secret").plain["metadata"]["annotations"]
    assert annotations["force-sync"] == "password-1.secretkey-0"
    assert rotated.outputs[outputs.ARGOCD_SECRET_REVISION] == "password-1.secretkey-0"
    # The keepers change replaces the password; salt and mtime are keyed to the password, and the
    # hash and both items are computed from it, so all follow. (The fakes hand out the same
    # "new" password, so here only the keyed inputs differ.)
    assert changed(homelab, rotated) == {"argocd-admin-password", "argocd-external-secret"}
    for follower in (
        "argocd-admin-password-salt",
        "argocd-admin-password-mtime",
        "argocd-admin-item",
        "argocd-secret-item",
    ):
        assert rotated.named("argocd-admin-password").urn in rotated.named(follower).dependencies


def test_rotating_the_server_secret_key_leaves_the_password_alone(homelab):
    rotated = run_stack(config={"argocdServerSecretKeyRotation": 1})
    assert rotated.named("argocd-server-secretkey").plain["keepers"] == {"rotation": "1"}
    assert changed(homelab, rotated) == {"argocd-server-secretkey", "argocd-external-secret"}
    assert "keepers" not in rotated.named("argocd-admin-password").plain


def test_without_a_bump_nothing_is_rotated(homelab):
    again = run_stack(config={"argocdAdminPasswordRotation": 0, "argocdServerSecretKeyRotation": 0})
    assert changed(homelab, again) == set()


@pytest.mark.parametrize("value", [-1, "next"])
def test_bad_rotation_counters_are_refused(value):
    with pytest.raises(ConfigError, match="cluster-secrets:argocdAdminPasswordRotation"):
        run_stack(config={"argocdAdminPasswordRotation": value})


# Faults: a clear error, nothing half-registered, the message names what was asked for.


def run_failing(vaults) -> tuple[str, list]:
    monitor = fakes(vaults)
    with pytest.raises(ConfigError) as error:
        run_stack(monitor=monitor)
    message = str(error.value)
    assert CANARY_TOKEN not in message
    return message, monitor.registrations


@pytest.mark.parametrize("item", ["1password-credentials", "onepassword-connect-token"])
@pytest.mark.parametrize("failure", ["429 Too Many Requests", "401 Unauthorized: service account token expired"])
def test_a_failing_1password_read_names_the_item_and_registers_nothing(item, failure):
    vaults = default_vaults()
    vaults["InitHomeLab"][item] = {"providerError": failure}
    message, registered = run_failing(vaults)
    assert f"could not read item '{item}' in vault 'InitHomeLab'" in message and failure in message
    assert registered == []


def test_a_vault_the_account_cannot_see_registers_nothing():
    vaults = default_vaults()
    del vaults["InitHomeLab"]
    message, registered = run_failing(vaults)
    assert "could not read vault 'InitHomeLab'" in message
    assert registered == []


def test_a_token_that_is_only_whitespace_is_malformed():
    vaults = default_vaults()
    vaults["InitHomeLab"]["onepassword-connect-token"] = {"password": "\n\t "}
    message, registered = run_failing(vaults)
    assert "'onepassword-connect-token' in vault 'InitHomeLab': no Connect token" in message
    assert registered == []
