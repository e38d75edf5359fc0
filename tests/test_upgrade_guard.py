"""The upgrade guard (cluster_secrets/upgrade_guard.py): each rule on a bump it lets through and one it
stops; `up` and `preview` stopped by it before Pulumi runs; `plan --diff` warning about the jump."""

import pytest

from cluster_secrets import converge, upgrade_guard
from cluster_secrets.kube import Obj
from cluster_secrets.upgrade_guard import ESO_CRDS, ESO_KEY, LiveEso, read_live
from components.versions import parse_chart_version
from tests.fake_cluster import CANARY_HASH, CANARY_KEY, FakeCluster
from tests.test_deploy import FakeCli
from tests.test_plan import diff_against, repository  # noqa: F401 - the fixture, used by name

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
ESO_DEPLOYMENT = "/apis/apps/v1/namespaces/eso/deployments/external-secrets"


def crd(name: str, served: dict[str, bool], storage: str, stored: list[str]) -> Obj:
    """A CRD as the API server serves it: spec.versions (served, storage) and status.storedVersions."""
    versions = [{"name": v, "served": on, "storage": v == storage} for v, on in served.items()]
    return {"metadata": {"name": name}, "spec": {"versions": versions}, "status": {"storedVersions": stored}}


# The ESO CRDs as each chart installs them (read in the charts' CRD templates), stored as a cluster
# that ran only that chart stores them.
AS_INSTALLED = {
    "0.12.1": ({"v1alpha1": True, "v1beta1": True}, "v1beta1", ["v1beta1"]),
    "0.16.2": ({"v1": True, "v1beta1": True}, "v1", ["v1beta1", "v1"]),
    "2.9.0": ({"v1": True, "v1beta1": False}, "v1", ["v1beta1", "v1"]),
}


def eso_cluster(chart: str, stored: list[str] | None = None, cluster: FakeCluster | None = None) -> FakeCluster:
    """A cluster running the ESO chart `chart` installed by Helm, its CRDs' storedVersions `stored`."""
    cluster = cluster or FakeCluster()
    served, storage, as_installed = AS_INSTALLED[chart]
    for name in ESO_CRDS:
        cluster.paths[CRD_PATH.format(name=name)] = crd(name, served, storage, stored or as_installed)
    cluster.paths[ESO_DEPLOYMENT] = {
        "metadata": {
            "labels": {"helm.sh/chart": f"external-secrets-{chart}", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "external-secrets", "meta.helm.sh/release-namespace": "eso"},
        }
    }
    return cluster


def live(chart: str, stored: list[str] | None = None) -> LiveEso:
    return read_live(eso_cluster(chart, stored), "eso")


def test_read_live_reads_the_crds_versions_and_the_running_chart():
    facts = live("0.12.1")
    assert [c.name for c in facts.crds] == list(ESO_CRDS)
    first = facts.crds[0]
    assert (first.served, first.storage, first.stored) == (("v1alpha1", "v1beta1"), "v1beta1", ("v1beta1",))
    assert facts.chart == parse_chart_version("0.12.1")


def test_a_new_cluster_is_never_stopped_nor_warned_about():
    facts = read_live(FakeCluster(), "eso")
    assert facts == LiveEso((), None)
    for target in ("0.12.1", "0.16.2", "2.9.0"):
        assert upgrade_guard.problems(facts, target, ESO_KEY) == []
        assert upgrade_guard.minor_step_warnings(facts.chart, target, ESO_KEY) == []


# Rule 1: a stored version the target's CRDs drop.
def test_v1alpha1_in_stored_versions_stops_the_bump_to_0_16_naming_the_key_and_the_patch():
    found = upgrade_guard.stored_version_problems(live("0.12.1", ["v1alpha1", "v1beta1"]), "0.16.2", ESO_KEY)
    assert len(found) == 1
    text = str(found[0])
    assert text.startswith("cluster-secrets:esoChartVersion: the CRDs externalsecrets.external-secrets.io, ")
    assert "list v1alpha1 in status.storedVersions" in text
    assert (
        "kubectl patch crd externalsecrets.external-secrets.io --subresource=status --type=json "
        '-p \'[{"op":"replace","path":"/status/storedVersions","value":["v1beta1"]}]\''
    ) in text
    assert text.count("kubectl patch crd") == len(ESO_CRDS)


def test_stored_versions_the_target_lists_pass():
    assert upgrade_guard.stored_version_problems(live("0.12.1"), "0.16.2", ESO_KEY) == []
    # 2.9.0 no longer serves v1beta1 but still lists it, so a stored v1beta1 does not block the CRD update.
    assert upgrade_guard.stored_version_problems(live("0.16.2"), "2.9.0", ESO_KEY) == []


def test_a_downgrade_across_0_16_is_stopped_as_objects_are_stored_as_v1():
    found = upgrade_guard.problems(live("0.16.2"), "0.12.1", ESO_KEY)
    assert [p.key for p in found] == [ESO_KEY]
    assert "list v1 in status.storedVersions, which chart 0.12.1 does not know" in found[0].live
    assert "keep it at 0.16.0 or newer" in found[0].path


# Rule 2: the in-place move from v1beta1 to v1 needs a chart serving both.
def test_0_12_1_to_2_9_0_is_stopped_with_the_path_through_0_16_2():
    found = upgrade_guard.bridge_problems(live("0.12.1"), "2.9.0", ESO_KEY)
    assert len(found) == 1
    assert "external-secrets.io/v1beta1, which chart 2.9.0 no longer serves" in found[0].live
    assert found[0].path == (
        "Go through 0.16.2 first (ESO's v0.17.0 notes: move to v1 on 0.16): set cluster-secrets:esoChartVersion "
        "to 0.16.2, run `up`, then set it to 2.9.0 and run `up` again"
    )


@pytest.mark.parametrize(("running", "target"), [("0.12.1", "0.16.2"), ("0.16.2", "2.9.0"), ("2.9.0", "2.9.0")])
def test_the_steps_of_the_path_pass(running, target):
    assert upgrade_guard.problems(live(running), target, ESO_KEY) == []


# Rule 3: ESO's advice of one minor at a time is a warning, never a stop.
def test_skipped_minors_are_warned_about_by_name():
    [warning] = upgrade_guard.minor_step_warnings(parse_chart_version("0.12.1"), "0.16.2", ESO_KEY)
    assert warning.startswith("cluster-secrets:esoChartVersion: ESO 0.12.1 -> 0.16.2 skips 3 minor releases")
    assert "(0.13, 0.14, 0.15)" in warning and "stability-support.md" in warning
    [across] = upgrade_guard.minor_step_warnings(parse_chart_version("0.20.0"), "1.2.0", ESO_KEY)
    assert "skips 2 minor releases (1.0, 1.1)" in across


@pytest.mark.parametrize(("running", "target"), [("0.12.1", "0.13.0"), ("0.20.1", "1.0.0"), ("1.3.2", "2.0.0")])
def test_one_minor_at_a_time_is_not_warned_about(running, target):
    assert upgrade_guard.minor_step_warnings(parse_chart_version(running), target, ESO_KEY) == []


# Offline: `plan --diff` only has the two pinned versions.
def test_jump_warnings_name_the_path_and_say_nothing_without_a_jump():
    warnings = upgrade_guard.jump_warnings("0.12.1", "2.9.0", ESO_KEY)
    assert warnings[0].startswith("on a cluster running 0.12.1, cluster-secrets:esoChartVersion:")
    assert "Go through 0.16.2 first" in warnings[0]
    assert any("crosses 0.16.0" in w and "storedVersions" in w for w in warnings)
    assert any("skips 21 minor releases" in w for w in warnings)
    assert upgrade_guard.jump_warnings("0.12.1", "0.12.1", ESO_KEY) == []
    assert upgrade_guard.jump_warnings("", "2.9.0", ESO_KEY) == []  # a new stack at REF: nothing to jump from
    assert not any("Go through" in w for w in upgrade_guard.jump_warnings("0.16.2", "2.9.0", ESO_KEY))


def test_plan_diff_warns_about_the_eso_jump_and_still_plans(repository, capsys):  # noqa: F811
    stack_file = repository / "Pulumi.homelab.yaml"
    stack_file.write_text(stack_file.read_text().replace("esoChartVersion: 0.12.1", "esoChartVersion: 2.9.0"))
    section = diff_against(repository, "HEAD", "homelab", capsys)  # exit code 0: a warning does not fail
    assert "- warning: on a cluster running 0.12.1, cluster-secrets:esoChartVersion:" in section
    assert "set cluster-secrets:esoChartVersion to 0.16.2" in section
    assert "+    version: 2.9.0" in section


# `up` and `preview`: the preflight reads the live cluster and stops before Pulumi runs.
@pytest.fixture
def converged(tmp_path) -> FakeCli:
    """A homelab stack deployed (fake Pulumi) on a cluster running ESO 0.12.1."""
    cli = FakeCli(tmp_path)
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    eso_cluster("0.12.1", cluster=cli.cluster)
    cli.lines.clear()
    return cli


def pin_eso(cli: FakeCli, version: str) -> None:
    stack_file = cli.project / "Pulumi.homelab.yaml"
    stack_file.write_text(stack_file.read_text().replace("esoChartVersion: 0.12.1", f"esoChartVersion: {version}"))


def pulumi_runs(cli: FakeCli, since: int) -> list[str]:
    return [" ".join(c["args"][:1]) for c in cli.calls[since:] if c["args"][0] in ("preview", "up")]


@pytest.mark.parametrize("command", ["preview", "up"])
def test_the_bump_to_2_9_0_stops_before_pulumi_runs_naming_key_and_path(converged: FakeCli, command: str):
    pin_eso(converged, "2.9.0")
    before = len(converged.calls)
    assert converged.run(command, **converged.environ()) == converge.EXIT_USAGE
    assert pulumi_runs(converged, before) == []
    text = converged.text
    assert (
        "error: Stack homelab: the ESO upgrade needs a step this program does not take (nothing was changed):" in text
    )
    assert "cluster-secrets:esoChartVersion: the cluster's ESO serves this stack's ESO objects at" in text
    assert "set cluster-secrets:esoChartVersion to 0.16.2, run `up`, then set it to 2.9.0" in text
    assert "warning: cluster-secrets:esoChartVersion: ESO 0.12.1 -> 2.9.0 skips 21 minor releases" in text


def test_the_bump_to_0_16_2_passes_with_the_minor_warning(converged: FakeCli):
    pin_eso(converged, "0.16.2")
    before = len(converged.calls)
    assert converged.run("preview", **converged.environ()) == converge.EXIT_OK
    assert pulumi_runs(converged, before) == ["preview"]
    assert "warning: cluster-secrets:esoChartVersion: ESO 0.12.1 -> 0.16.2 skips 3 minor releases" in converged.text
    assert "needs a step" not in converged.text


def test_v1alpha1_left_in_stored_versions_stops_preview(converged: FakeCli):
    eso_cluster("0.12.1", ["v1alpha1", "v1beta1"], cluster=converged.cluster)
    pin_eso(converged, "0.16.2")
    assert converged.run("preview", **converged.environ()) == converge.EXIT_USAGE
    assert "list v1alpha1 in status.storedVersions, which chart 0.16.2 drops" in converged.text
    assert "--subresource=status" in converged.text


def test_a_stack_on_its_own_version_is_not_stopped(converged: FakeCli):
    before = len(converged.calls)
    assert converged.run("preview", **converged.environ()) == converge.EXIT_OK
    assert pulumi_runs(converged, before) == ["preview"]
    assert "warning: cluster-secrets:esoChartVersion" not in converged.text


def test_no_secret_is_in_the_guards_message(converged: FakeCli):
    pin_eso(converged, "2.9.0")
    assert converged.run("preview", **converged.environ()) == converge.EXIT_USAGE
    assert CANARY_HASH not in converged.text and CANARY_KEY not in converged.text
