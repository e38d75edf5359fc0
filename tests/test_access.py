"""How a cluster reaches 1Password (onepasswordAccess): its own Connect (connect, the default), a
Connect that runs already (external-connect), or a service account with ESO's onepasswordSDK
provider (service-account). The program under mocks, its objects against ESO's CRD schemas, the
refused combinations, the offline plan of each mode, and what `status` says of Connect."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_secrets import status
from cluster_secrets.__main__ import main
from cluster_secrets.offline import is_secret
from components.errors import ConfigError
from tests.conftest import CANARIES, assert_no_plaintext, copy_project, default_vaults, run_stack
from tests.fake_cluster import FakeCluster
from tests.test_policies import assert_passes_every_policy
from tests.test_schemas import ESO_VERSIONS, assert_eso_objects_valid

EXTERNAL = {"onepasswordAccess": "external-connect", "connectHost": "https://connect.homelab.example:8443"}
SA_TOKEN = "canary-service-account-token-0c1e"
SERVICE_ACCOUNT = {
    "onepasswordAccess": "service-account",
    "serviceAccountTokenItem": "eso-service-account",
    "esoChartVersion": "2.9.0",
}


def vaults() -> dict[str, Any]:
    found = default_vaults()
    found["InitHomeLab"]["eso-service-account"] = {"credential": SA_TOKEN}
    return found


def store(run: Any, api: str) -> dict[str, Any]:
    return dict(run.one(f"kubernetes:external-secrets.io/{api}:ClusterSecretStore").plain)


def reads(run: Any) -> list[str]:
    return [args.get("title", args.get("name")) for _, args in run.monitor.invokes]


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_an_external_connect_gets_no_connect_of_the_stacks_and_a_store_that_points_there(eso_version, api):
    run = run_stack(config={**EXTERNAL, "esoChartVersion": eso_version})
    assert not run.by_type("cluster-secrets:index:OnePasswordConnect")
    assert sorted(r.name for r in run.by_type("kubernetes:core/v1:Namespace")) == [
        "argocd-namespace",
        "external-secrets-namespace",
    ]
    assert "1password-credentials" not in reads(run)  # Connect's credentials are not this stack's to read
    provider = store(run, api)["spec"]["provider"]["onepassword"]
    assert provider["connectHost"] == EXTERNAL["connectHost"]
    assert provider["auth"]["secretRef"]["connectTokenSecretRef"]["name"] == "onepassword-connect-token"
    assert run.outputs["connectHost"] == EXTERNAL["connectHost"]
    assert_eso_objects_valid(run, eso_version, api)


def test_a_service_account_gets_an_sdk_store_for_the_working_vault_and_its_token_as_a_secret():
    run = run_stack(config=SERVICE_ACCOUNT, vaults=vaults())
    assert not [r for r in run.registrations if r.name.startswith("connect")]
    assert store(run, "v1")["spec"]["provider"] == {
        "onepasswordSDK": {
            "vault": "HomeLab",
            "auth": {
                "serviceAccountSecretRef": {"name": "onepassword-connect-token", "key": "token", "namespace": "eso"}
            },
        }
    }
    token = run.named("external-secrets-connect-token")
    assert is_secret(token.inputs["stringData"]) and token.plain["stringData"]["token"] == SA_TOKEN
    assert run.outputs["connectHost"] == ""
    assert_no_plaintext(run, (*CANARIES, SA_TOKEN))
    external_secret = run.one("kubernetes:external-secrets.io/v1:ExternalSecret").plain
    # The SDK provider takes secret references, <item>/<field>, and no property.
    assert [entry["remoteRef"] for entry in external_secret["spec"]["data"]] == [
        {"key": "argocd-secret/admin.password"},
        {"key": "argocd-secret/admin.passwordMtime"},
        {"key": "argocd-secret/server.secretkey"},
    ]
    assert_eso_objects_valid(run, "2.9.0", "v1")


def test_a_service_account_warns_at_preview_of_the_reads_an_hour_against_its_limit():
    gitops = {"gitopsRepoURL": "https://github.com/me/gitops.git", "gitopsCredentialsItem": "gitops"}
    run = run_stack(config={**SERVICE_ACCOUNT, **gitops}, vaults=vaults())
    warnings = [message for severity, message in run.monitor.log.messages if severity == "warning"]
    (warning,) = [w for w in warnings if "service-account" in w]
    assert "read 1Password about 5 times an hour" in warning
    assert "argocd-secret 3, gitops-repository 2" in warning and "1,000 on Teams, 10,000 on Business" in warning
    repository = run.named("gitops-repository").plain
    assert [entry["remoteRef"] for entry in repository["spec"]["data"]] == [
        {"key": "gitops/username"},
        {"key": "gitops/password"},
    ]
    assert not [m for _, m in run_stack(config=EXTERNAL).monitor.log.messages if "service-account" in m]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {**SERVICE_ACCOUNT, "esoChartVersion": "0.16.2"},
            "cluster-secrets:esoChartVersion: 0.16.2 has no onepasswordSDK provider; onepasswordAccess service-account "
            "needs ESO 0.17.0 or newer",
        ),
        ({"onepasswordAccess": "external-connect"}, "cluster-secrets:connectHost: '' is not a Connect URL"),
        (
            {**EXTERNAL, "connectHost": "connect:8080"},
            "cluster-secrets:connectHost: 'connect:8080' is not a Connect URL",
        ),
        (
            {"connectHost": "http://connect:8080"},
            "cluster-secrets:connectHost: is only for onepasswordAccess external-connect",
        ),
        (
            {**SERVICE_ACCOUNT, "serviceAccountTokenItem": ""},
            "cluster-secrets:serviceAccountTokenItem: must name the item of the init vault",
        ),
        (
            {**SERVICE_ACCOUNT, "storeVaults": {"HomeLab": 1, "Shared": 2}},
            "cluster-secrets:storeVaults: must be just the workingVault 'HomeLab' with onepasswordAccess "
            "service-account (ESO's onepasswordSDK provider reads one vault per store)",
        ),
        ({"serviceAccountTokenItem": "x"}, "cluster-secrets:serviceAccountTokenItem: is only for onepasswordAccess"),
        ({"onepasswordAccess": "ssh"}, "cluster-secrets:onepasswordAccess: 'ssh' is not one of 'connect', "),
    ],
)
def test_combinations_that_cannot_work_are_refused_naming_the_keys(config, expected):
    with pytest.raises(ConfigError) as refused:
        run_stack(config=config, vaults=vaults())
    assert expected in str(refused.value)


def test_without_connect_no_connect_chart_version_is_needed():
    run = run_stack(config={**EXTERNAL, "connectChartVersion": ""})
    assert run.outputs["chartVersions"]["connect"] == ""


@pytest.mark.parametrize(
    "settings",
    [
        EXTERNAL,
        {**EXTERNAL, "esoChartVersion": "2.9.0"},
        {**SERVICE_ACCOUNT, "serviceAccountTokenItem": "onepassword-connect-token"},
    ],
    ids=["external-connect-0.12.1", "external-connect-2.9.0", "service-account-2.9.0"],
)
def test_each_mode_plans_offline_with_its_secrets_masked(tmp_path: Path, capsys: pytest.CaptureFixture, settings):
    copy = copy_project(tmp_path / "project")
    document = yaml.safe_load((copy / "Pulumi.homelab.yaml").read_text())
    document["config"].update({f"cluster-secrets:{key}": value for key, value in settings.items()})
    (copy / "Pulumi.mode.yaml").write_text(yaml.safe_dump(document))
    assert main(["plan", "mode", "--program-dir", str(copy)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "OnePasswordConnect" not in out
    assert "stringData: '[secret]'" in out and "canary" not in out


@pytest.mark.parametrize(
    ("access", "host", "expected"),
    [
        (
            "external-connect",
            "https://connect.example",
            "not installed by this stack: the store reads the Connect at https://connect.example",
        ),
        ("service-account", "", "none: the store reads 1Password with a service account (onepasswordSDK)"),
    ],
)
def test_status_has_no_connect_deployment_to_check_without_connect(access, host, expected):
    cluster = FakeCluster()
    del cluster.objects[("deployment", "onepassword", "onepassword-connect")]
    target = status.Target("homelab", "onepassword", "eso", "auto", access, host)
    line = status.connect_line(cluster, target)
    assert (line.ok, line.text) == (True, expected)
    assert not status.connect_line(cluster, status.Target("homelab", "onepassword", "eso", "auto")).ok


@pytest.mark.parametrize("settings", [EXTERNAL, SERVICE_ACCOUNT], ids=["external-connect", "service-account"])
def test_without_connect_every_policy_passes(settings):
    """The pack's Connect policy looks at Connect's release and Service, so with none it has nothing
    to flag, and nothing else in the pack needs a Connect."""
    assert_passes_every_policy(run_stack(config=settings, vaults=vaults()))
