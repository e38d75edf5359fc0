import pytest
import yaml

from components.config import KEYS, PROJECT, parse_settings
from components.errors import ConfigError
from tests.conftest import ROOT, fakes, run_stack, stack_config


def raw(stack: str = "homelab", **overrides) -> dict[str, str]:
    """Config values as the program sees them, keyed without the project prefix."""
    config = stack_config(stack, overrides)
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}


def problem(**overrides) -> str:
    with pytest.raises(ConfigError) as error:
        parse_settings(raw(**overrides))
    return str(error.value)


def test_homelab_config_is_the_reference_setup():
    settings = parse_settings(raw())
    assert settings.kube_context == "homelab"
    assert settings.kubeconfig_path == ""
    op = settings.onepassword
    assert (op.init_vault, op.credentials_item, op.token_item) == (
        "InitHomeLab",
        "1password-credentials",
        "onepassword-connect-token",
    )
    assert (op.working_vault, dict(op.store_vaults)) == ("HomeLab", {"HomeLab": 1})
    connect = settings.connect
    assert (connect.namespace, connect.chart.version, connect.chart.repository) == (
        "onepassword",
        "1.17.0",
        "https://1password.github.io/connect-helm-charts",
    )
    assert (connect.credentials_secret, connect.credentials_key) == ("op-credentials", "1password-credentials.json")
    eso = settings.external_secrets
    assert (eso.namespace, eso.chart.version, eso.chart.repository) == (
        "eso",
        "0.12.1",
        "https://charts.external-secrets.io",
    )
    assert (eso.token_secret, eso.token_key, eso.store_name) == (
        "onepassword-connect-token",
        "token",
        "one-secretstore",
    )
    argocd = settings.argocd
    assert (argocd.namespace, argocd.chart.version, argocd.chart.repository) == (
        "argocd",
        "10.1.1",
        "https://argoproj.github.io/argo-helm",
    )
    assert (argocd.create_secret, argocd.secret_item, argocd.admin_item, argocd.admin_password_length) == (
        "auto",
        "argocd-secret",
        "argo-admin",
        32,
    )


def test_pulumi_yaml_declares_every_key_the_program_reads():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(KEYS)
    for key, spec in declared.items():
        assert spec.get("description"), f"{key} has no description"
        # The CLI accepts these types only; an object (storeVaults) is declared without one.
        assert spec.get("type", "string") in {"string", "integer", "boolean", "array"}, key
        if "type" in spec and "default" in spec:
            expected = {"string": str, "integer": int, "boolean": bool, "array": list}[spec["type"]]
            assert isinstance(spec["default"], expected), key


def test_chart_versions_are_pinned_in_the_stack_files_only():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in ("connectChartVersion", "esoChartVersion", "argocdChartVersion"):
        assert declared[key]["default"] == ""  # empty: follow the primary stack
    assert (ROOT / "Pulumi.homelab.yaml").read_text().count("# renovate: datasource=helm") == 3
    assert (ROOT / "Pulumi.homelab-2.yaml").read_text().count("# renovate: datasource=helm") == 2


@pytest.mark.parametrize("key", ["connectChartVersion", "esoChartVersion", "argocdChartVersion"])
def test_a_primary_stack_must_pin_every_chart_version(key):
    message = problem(**{key: ""})
    assert f"{PROJECT}:{key}: must be set" in message


def test_empty_chart_versions_follow_the_inherited_ones():
    values = raw(esoChartVersion="", argocdChartVersion="", primaryStack="organization/cluster-secrets/homelab")
    settings = parse_settings(values, inherited={"esoChartVersion": "2.9.0", "argocdChartVersion": "9.0.0"})
    assert (settings.external_secrets.chart.version, settings.argocd.chart.version) == ("2.9.0", "9.0.0")
    assert settings.external_secrets.chart.parsed.major == 2
    assert settings.connect.chart.version == "1.17.0"  # pinned here: the stack's own wins


def test_the_store_must_search_the_vault_of_our_own_items():
    assert f"{PROJECT}:storeVaults: must include the workingVault 'HomeLab'" in problem(storeVaults={"Other": 1})


def test_sharing_admin_items_needs_a_primary():
    assert f"{PROJECT}:shareArgocdAdmin: needs primaryStack" in problem(shareArgocdAdmin=True)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("storeVaults", {}, "storeVaults: is empty or not a map"),
        ("storeVaults", "HomeLab", "storeVaults: is not a map"),
        ("storeVaults", ["HomeLab"], "storeVaults: is empty or not a map"),
        ("storeVaults", {"HomeLab": "1"}, "vault 'HomeLab' has priority '1', which is not an integer"),
        ("storeVaults", {"HomeLab": 1.5}, "vault 'HomeLab' has priority 1.5, which is not an integer"),
        ("storeVaults", {"HomeLab": True}, "vault 'HomeLab' has priority True, which is not an integer"),
        ("storeVaults", {"HomeLab": 1, "Shared": 1}, "vaults 'HomeLab' and 'Shared' share priority 1"),
        ("esoChartVersion", "latest", "esoChartVersion: 'latest' is not a chart version"),
        ("connectChartVersion", "^1.17", "connectChartVersion: '^1.17' is not a chart version"),
        ("argocdChartVersion", "10.1", "argocdChartVersion: '10.1' is not a chart version"),
        ("argocdNamespace", "Argo_CD", "argocdNamespace: 'Argo_CD' is not a valid namespace"),
        ("esoNamespace", "-eso", "esoNamespace: '-eso' is not a valid namespace"),
        ("connectNamespace", "a" * 64, "is not a valid namespace (expected a DNS-1123 label"),
        ("argocdCreateSecret", "yes", "argocdCreateSecret: 'yes' is not one of auto, true, false"),
        ("argocdAdminPasswordLength", 15, "argocdAdminPasswordLength: 15 is out of range (expected 16 to 72"),
        ("argocdAdminPasswordLength", 73, "argocdAdminPasswordLength: 73 is out of range"),
        ("argocdAdminPasswordLength", "long", "argocdAdminPasswordLength: 'long' is not an integer"),
        ("kubeContext", "", "kubeContext: must not be empty"),
        ("shareArgocdAdmin", "yes", "shareArgocdAdmin: 'yes' is not true or false"),
    ],
)
def test_bad_input_names_the_key_and_what_is_expected(key, value, expected):
    message = problem(**{key: value})
    assert f"{PROJECT}:{key}" in message
    assert expected in message


@pytest.mark.parametrize("length", [16, 72])
def test_password_length_bounds_are_inclusive(length):
    assert parse_settings(raw(argocdAdminPasswordLength=length)).argocd.admin_password_length == length


def test_every_problem_is_reported_at_once():
    message = problem(esoChartVersion="x", argocdNamespace="UPPER", argocdCreateSecret="maybe")
    assert message.count(f"{PROJECT}:") == 3


def test_a_missing_required_key_is_named():
    values = raw()
    del values["kubeContext"]
    with pytest.raises(ConfigError, match=f"{PROJECT}:kubeContext: missing"):
        parse_settings(values)


def test_bad_config_stops_the_program_before_anything_is_registered():
    monitor = fakes()
    with pytest.raises(ConfigError, match="argocdCreateSecret"):
        run_stack(config={"argocdCreateSecret": "sometimes"}, monitor=monitor)
    assert monitor.registrations == [] and monitor.invokes == []
