import re

import pytest
import yaml

from cluster_secrets.stack_files import project_values
from components.config import KEYS, PROJECT, SHOWN_VALUE_LENGTH, StackConfig, declarations, load_config
from components.errors import ConfigError
from tests.conftest import ROOT, fakes, run_stack, stack_config


def raw(stack: str = "homelab", **overrides) -> dict[str, str]:
    """Config values as the program sees them, keyed without the project prefix."""
    return project_values(stack_config(stack, overrides))


def load(stack: str = "homelab", **overrides) -> StackConfig:
    return load_config(raw(stack, **overrides), stack)


def problem(**overrides) -> str:
    with pytest.raises(ConfigError) as error:
        load(**overrides)
    return str(error.value)


def test_homelab_config_is_the_reference_setup():
    config = load()
    assert (config.kube_context, config.kubeconfig_path, config.primary_stack) == ("homelab", "", "")
    assert (config.init_vault, config.credentials_item, config.token_item) == (
        "InitHomeLab",
        "1password-credentials",
        "onepassword-connect-token",
    )
    assert (config.working_vault, config.store_vaults) == ("HomeLab", {"HomeLab": 1})
    assert (config.connect_namespace, config.connect_chart.version, config.connect_chart.repository) == (
        "onepassword",
        "1.17.0",
        "https://1password.github.io/connect-helm-charts",
    )
    assert (config.connect_credentials_secret, config.connect_credentials_key) == (
        "op-credentials",
        "1password-credentials.json",
    )
    assert (config.eso_namespace, config.eso_chart.version, config.eso_chart.repository) == (
        "eso",
        "0.12.1",
        "https://charts.external-secrets.io",
    )
    assert (config.eso_token_secret, config.eso_token_key, config.secret_store_name) == (
        "onepassword-connect-token",
        "token",
        "one-secretstore",
    )
    assert (config.argocd_namespace, config.argocd_chart.version, config.argocd_chart.repository) == (
        "argocd",
        "10.1.1",
        "https://argoproj.github.io/argo-helm",
    )
    assert (
        config.argocd_create_secret,
        config.argocd_secret_item,
        config.argocd_admin_item,
        config.argocd_admin_password_length,
    ) == ("auto", "argocd-secret", "argo-admin", 32)


def test_pulumi_yaml_declares_exactly_what_the_model_says():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert declared == declarations()
    for key, spec in declared.items():
        assert spec["description"], key
        # Every key is typed, so the CLI checks every value (storeVaults as an object too).
        assert spec["type"] in {"string", "integer", "boolean", "array", "object"}, key
    assert declared["storeVaults"]["type"] == "object"


def readme_config_table() -> dict[str, str]:
    """The README's config table: each key named in a row's first cell, to that row's default cell."""
    section = (ROOT / "README.md").read_text().split("\n## Config\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            for key in re.findall(r"`(\w+)`", cells[0]):
                rows[key] = cells[1]
    return rows


def test_the_readme_config_table_lists_every_key_with_its_default():
    rows = readme_config_table()
    assert sorted(rows) == sorted(KEYS)
    for key, spec in declarations().items():
        default = spec.get("default")
        if isinstance(default, bool | int) and not isinstance(default, dict):
            assert f"`{str(default).lower()}`" in rows[key], key
        elif isinstance(default, str) and default and len(rows[key].split(",")) == 1:
            assert f"`{default}`" in rows[key] or default.startswith("https://"), key
    assert rows["kubeContext"] == "(required)"


def test_chart_versions_are_pinned_in_the_stack_files_only():
    declared = declarations()
    for key in ("connectChartVersion", "esoChartVersion", "argocdChartVersion"):
        assert declared[key]["default"] == ""  # empty: follow the primary stack
    assert (ROOT / "Pulumi.homelab.yaml").read_text().count("# renovate: datasource=helm") == 3
    assert (ROOT / "Pulumi.homelab-2.yaml").read_text().count("# renovate: datasource=helm") == 2


@pytest.mark.parametrize("key", ["connectChartVersion", "esoChartVersion", "argocdChartVersion"])
def test_a_primary_stack_must_pin_every_chart_version(key):
    assert f"{PROJECT}:{key}: must be set" in problem(**{key: ""})


def test_empty_chart_versions_follow_the_inherited_ones():
    config = load(esoChartVersion="", argocdChartVersion="", primaryStack="organization/cluster-secrets/other")
    followed = config.following({"esoChartVersion": "2.9.0", "argocdChartVersion": "9.0.0"})
    assert (followed.eso_chart.version, followed.argocd_chart.version) == ("2.9.0", "9.0.0")
    assert followed.eso_chart.parsed.major == 2
    assert followed.connect_chart.version == "1.17.0"  # pinned here: the stack's own wins
    with pytest.raises(ConfigError, match=f"{PROJECT}:esoChartVersion: must be set"):
        config.following({"argocdChartVersion": "9.0.0"})


def test_the_store_must_search_the_vault_of_our_own_items():
    assert f"{PROJECT}:storeVaults: must include the workingVault 'HomeLab'" in problem(storeVaults={"Other": 1})


def test_sharing_admin_items_needs_a_primary():
    assert f"{PROJECT}:shareArgocdAdmin: needs primaryStack" in problem(shareArgocdAdmin=True)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("storeVaults", {}, "storeVaults: must name at least one vault"),
        ("storeVaults", "HomeLab", "storeVaults: 'HomeLab': input should be a valid dictionary"),
        ("storeVaults", ["HomeLab"], 'storeVaults: ["HomeLab"]: input should be a valid dictionary'),
        ("storeVaults", {"HomeLab": "1"}, "storeVaults['HomeLab']: '1': input should be a valid integer"),
        ("storeVaults", {"HomeLab": 1.5}, "storeVaults['HomeLab']: 1.5: input should be a valid integer"),
        ("storeVaults", {"HomeLab": True}, "storeVaults['HomeLab']: true: input should be a valid integer"),
        ("storeVaults", {"HomeLab": 1, "Shared": 1}, "vaults 'HomeLab' and 'Shared' share priority 1"),
        ("storeVaults", {"HomeLab": 1, " ": 2}, "storeVaults: the name ' ': must not be empty"),
        ("esoChartVersion", "latest", "esoChartVersion: 'latest' is not a chart version"),
        ("connectChartVersion", "^1.17", "connectChartVersion: '^1.17' is not a chart version"),
        ("argocdChartVersion", "10.1", "argocdChartVersion: '10.1' is not a chart version"),
        ("argocdNamespace", "Argo_CD", "argocdNamespace: 'Argo_CD' is not a valid namespace"),
        ("esoNamespace", "-eso", "esoNamespace: '-eso' is not a valid namespace"),
        ("connectNamespace", "a" * 64, "is not a valid namespace (expected a DNS-1123 label"),
        ("storeNamespaces", ["apps", "Apps"], "storeNamespaces[1]: 'Apps' is not a valid namespace"),
        ("storeNamespaces", ["apps", "apps"], "storeNamespaces: lists 'apps' more than once"),
        ("secretStoreName", "One_Store", "secretStoreName: 'One_Store' is not a valid Kubernetes name"),
        ("connectCredentialsSecret", "op credentials", "is not a valid Kubernetes name (expected a DNS-1123 sub"),
        ("esoTokenSecret", "x" * 254, "esoTokenSecret: 'xxxx"),
        ("esoTokenKey", "token/value", "esoTokenKey: 'token/value' is not a valid Secret key"),
        ("connectCredentialsKey", "", "connectCredentialsKey: '' is not a valid Secret key"),
        ("connectChartRepo", "ftp://charts.example", "is not a chart repository (expected an http(s):// or oci://"),
        ("argocdChartRepo", "argoproj.github.io/argo-helm", "argocdChartRepo: 'argoproj.github.io/argo-helm' is not"),
        ("esoChartRepo", "oci://", "esoChartRepo: 'oci://' is not a chart repository"),
        ("argocdCreateSecret", "yes", "argocdCreateSecret: 'yes' is not one of 'auto', 'true' or 'false'"),
        ("argocdAdminPasswordLength", 15, "argocdAdminPasswordLength: 15 is out of range (expected 16 to 72"),
        ("argocdAdminPasswordLength", 73, "argocdAdminPasswordLength: 73 is out of range"),
        ("argocdAdminPasswordLength", "long", "argocdAdminPasswordLength: 'long': input should be a valid integer"),
        ("argocdAdminPasswordRotation", -1, "argocdAdminPasswordRotation: -1 is negative"),
        ("kubeContext", "", "kubeContext: must not be empty"),
        ("kubeContext", "  ", "kubeContext: must not be empty"),
        ("initVault", "", "initVault: must not be empty"),
        ("shareArgocdAdmin", "yes", "shareArgocdAdmin: 'yes': input should be a valid boolean"),
        ("storeOpenToAllNamespaces", "on", "storeOpenToAllNamespaces: 'on': input should be a valid boolean"),
        ("argocdAdminItem", "argocd-secret", "argocdAdminItem: 'argocd-secret' is also argocdSecretItem"),
        ("esoNamespace", "onepassword", "esoNamespace: 'onepassword' is also connectNamespace"),
        ("connectNamespace", "argocd", "connectNamespace: 'argocd' is also argocdNamespace"),
        ("primaryStack", "homelab", "primaryStack: 'homelab' is not a stack name (expected <org>/cluster-secrets/"),
        ("primaryStack", "organization/other-project/homelab", "is a stack of project 'other-project'"),
        (
            "primaryStack",
            "organization/cluster-secrets/homelab",
            "'organization/cluster-secrets/homelab' is this stack",
        ),
        (
            "argocdCreatSecret",
            "auto",
            "argocdCreatSecret: is not a key of cluster-secrets; did you mean argocdCreateSecret?",
        ),
        ("zzz", "1", "zzz: is not a key of cluster-secrets; the keys are listed in Pulumi.yaml"),
        ("gitopsRepoURL", "github.com/me/gitops", "gitopsRepoURL: 'github.com/me/gitops' is not a Git repository URL"),
        ("gitopsRepoURL", "ftp://git.example/r", "is not a Git repository URL (expected https://host/path, ssh://"),
        ("gitopsRepoURL", "https://git.example/{{x}}", "gitopsRepoURL: 'https://git.example/{{x}}' is not a Git"),
        ("gitopsPath", "/clusters", "gitopsPath: '/clusters' is not a path inside the repository"),
        ("gitopsPath", "clusters/../x", "gitopsPath: 'clusters/../x' is not a path inside the repository"),
        ("gitopsPath", "", "gitopsPath: '' is not a path inside the repository"),
        ("gitopsRevision", "main branch", "gitopsRevision: 'main branch' is not a Git revision"),
        ("gitopsCredentialsItem", "gitops-repository", "gitopsCredentialsItem: needs gitopsRepoURL"),
        ("argocdValues", "ingress", "argocdValues: 'ingress': input should be a valid dictionary"),
        ("argocdValues", {"configs": {"secret": {"createSecret": False}}}, "configs.secret.createSecret is set by"),
        ("esoValues", {"crds": {"annotations": {}}}, "esoValues: crds.annotations is set by cluster-secrets"),
        ("connectValues", {"connect": {"serviceType": "NodePort"}}, "connectValues: connect.serviceType is set by"),
    ],
)
def test_bad_input_names_the_key_and_what_is_expected(key, value, expected):
    message = problem(**{key: value})
    assert f"{PROJECT}:{key}" in message
    assert expected in message


@pytest.mark.parametrize("length", [16, 72])
def test_password_length_bounds_are_inclusive(length):
    assert load(argocdAdminPasswordLength=length).argocd_admin_password_length == length


def test_every_problem_is_reported_at_once():
    message = problem(esoChartVersion="x", argocdNamespace="UPPER", argocdCreateSecret="maybe", primaryStack="bad")
    assert message.count(f"{PROJECT}:") == 4
    assert f"{PROJECT}:primaryStack: 'bad'" in message  # a bad primaryStack hides nothing else


def test_an_echoed_value_is_cut_short():
    message = problem(argocdCreateSecret="x" * 10_000)
    assert "(10002 characters)" in message
    assert "x" * (SHOWN_VALUE_LENGTH + 1) not in message
    assert len(message) < 400


def test_a_missing_required_key_is_named():
    values = raw()
    del values["kubeContext"]
    with pytest.raises(ConfigError, match=f"{PROJECT}:kubeContext: missing"):
        load_config(values, "homelab")


def test_bad_config_stops_the_program_before_anything_is_registered():
    monitor = fakes()
    with pytest.raises(ConfigError, match="argocdCreateSecret"):
        run_stack(config={"argocdCreateSecret": "sometimes"}, monitor=monitor)
    assert monitor.registrations == [] and monitor.invokes == []


def test_an_unknown_key_in_the_stack_stops_the_program_before_anything_is_registered():
    monitor = fakes()
    with pytest.raises(ConfigError, match="argocdCreatSecret: is not a key of cluster-secrets; did you mean"):
        run_stack(config={"argocdCreatSecret": "false"}, monitor=monitor)
    assert monitor.registrations == [] and monitor.invokes == []


def test_gitops_keys_work_together():
    config = load(
        gitopsRepoURL="https://github.com/me/gitops.git",
        gitopsCredentialsItem="gitops-repository",
        gitopsPath="clusters/homelab",
    )
    assert (config.gitops_repository_kind, config.gitops_credentials_vault_name) == ("https", "HomeLab")
    ssh = load(gitopsRepoURL="git@github.com:me/gitops.git", gitopsCredentialsItem="deploy-key")
    assert ssh.gitops_repository_kind == "ssh"
    assert f"{PROJECT}:storeVaults: must include 'GitOps', the vault of gitopsCredentialsItem" in problem(
        gitopsRepoURL="https://github.com/me/gitops.git", gitopsCredentialsItem="r", gitopsCredentialsVault="GitOps"
    )
    assert f"{PROJECT}:gitopsCredentialsVault: needs gitopsCredentialsItem" in problem(
        gitopsRepoURL="https://github.com/me/gitops.git", gitopsCredentialsVault="HomeLab"
    )


def test_a_password_in_the_repository_url_is_refused_and_never_echoed():
    message = problem(gitopsRepoURL="https://me:canary-url-token@github.com/me/gitops.git")
    assert f"{PROJECT}:gitopsRepoURL: carries a password" in message
    assert "canary-url-token" not in message
    # Not a URL either way, and still not echoed.
    message = problem(gitopsRepoURL="me:canary-url-token@github.com:me/gitops.git")
    assert "is not a Git repository URL" in message and "canary-url-token" not in message
