"""`plan`: the desired state, offline, and its diff between two versions of the program."""

import shutil
import subprocess

import pytest
import yaml

from cluster_secrets import desired, plan
from cluster_secrets.__main__ import main
from cluster_secrets.desired import SECRET_MARKER
from tests.conftest import ROOT


def plan_text(stack: str, new_stack: bool = False) -> str:
    return plan.format_plan(desired.of_stack(ROOT, stack, new_stack).state)


def diff_against(repository, ref: str, stack: str, capsys) -> str:
    """`plan STACK --diff REF` of the program in `repository`, through the command line."""
    capsys.readouterr()
    assert main(["plan", stack, "--diff", ref, "--program-dir", str(repository)]) == 0
    return capsys.readouterr().out


def test_plan_is_deterministic_and_masks_every_secret():
    first = plan_text("homelab")
    assert plan_text("homelab") == first
    assert "<placeholder for 1Password" not in first  # the 1Password reads are secrets, so masked
    assert SECRET_MARKER in first
    state = yaml.safe_load(first)
    assert state["outputs"]["argocdAdminPassword"] == SECRET_MARKER
    credentials = next(r for r in state["resources"] if r["name"] == "connect-credentials")
    assert credentials["inputs"]["stringData"] == SECRET_MARKER


def test_plan_lists_each_resource_with_type_parent_provider_dependencies_and_inputs():
    state = yaml.safe_load(plan_text("homelab"))
    assert len(state["resources"]) == 20
    store = next(r for r in state["resources"] if r["name"] == "external-secrets-store")
    assert store["type"] == "kubernetes:external-secrets.io/v1beta1:ClusterSecretStore"
    assert (store["parent"], store["provider"]) == ("external-secrets", "cluster")
    assert store["dependsOn"] == ["connect-release", "external-secrets-connect-token", "external-secrets-release"]
    assert store["inputs"]["spec"]["provider"]["onepassword"]["vaults"] == {"HomeLab": 1}
    release = next(r for r in state["resources"] if r["name"] == "argocd-release")
    assert release["inputs"]["values"]["configs"]["secret"]["createSecret"] is False  # converged by default
    assert state["reads"] == ["pulumi:pulumi:StackReference organization/cluster-secrets/homelab"]


def test_plan_of_a_new_stack_keeps_the_charts_secret():
    text = plan_text("homelab", new_stack=True)
    assert text.startswith("# homelab: 20 resources (")
    assert "Argo CD createSecret=true" in text.splitlines()[0]


def test_cli_plan_writes_a_file_and_diff_compares_two(tmp_path, capsys):
    base, head = tmp_path / "base.yaml", tmp_path / "homelab.yaml"
    assert main(["plan", "homelab", "--output", str(base)]) == 0
    assert main(["plan", "homelab", "--new-stack", "--output", str(head)]) == 0
    assert main(["diff", str(base), str(head)]) == 0
    printed = capsys.readouterr().out
    assert "-          createSecret: false" in printed and "+          createSecret: true" in printed
    assert "+  - argocd-release" in printed  # the ExternalSecret now waits for Argo CD


@pytest.fixture
def repository(tmp_path):
    """A git repository holding a copy of this project, committed once."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", "tests"))
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True)
    return repo


def test_diff_against_a_ref_shows_the_eso_upgrade(repository, capsys):
    stack_file = repository / "Pulumi.homelab.yaml"
    stack_file.write_text(stack_file.read_text().replace("esoChartVersion: 0.12.1", "esoChartVersion: 2.9.0"))
    section = diff_against(repository, "HEAD", "homelab", capsys)
    assert section.startswith("#### Stack `homelab`")
    assert "-    apiVersion: external-secrets.io/v1beta1" in section
    assert "+    apiVersion: external-secrets.io/v1" in section
    assert "-  type: kubernetes:external-secrets.io/v1beta1:ClusterSecretStore" in section
    assert "+    version: 2.9.0" in section


def test_diff_against_a_ref_plans_the_base_with_its_own_code(repository, capsys):
    argocd = repository / "components" / "argocd.py"
    argocd.write_text(argocd.read_text().replace('"refreshInterval": "1h"', '"refreshInterval": "30m"'))
    section = diff_against(repository, "HEAD", "homelab", capsys)
    assert "-      refreshInterval: 1h" in section and "+      refreshInterval: 30m" in section


def test_diff_against_an_unchanged_tree_says_so(repository, capsys):
    assert "No change to the desired state." in diff_against(repository, "HEAD", "homelab", capsys)


def test_diff_against_a_bad_ref_exits_2_and_names_the_ref(repository, capsys):
    assert main(["plan", "homelab", "--diff", "no-such-ref", "--program-dir", str(repository)]) == 2
    assert "error: git could not read 'no-such-ref'" in capsys.readouterr().err


@pytest.mark.parametrize(("golden", "new_stack"), [("homelab.plan.yaml", False), ("homelab.new-stack.plan.yaml", True)])
def test_homelab_desired_state_is_unchanged(golden, new_stack):
    """The homelab stack's resources, inputs, dependencies and outputs, as recorded in tests/golden.

    A change here is a change for every existing homelab cluster: regenerate the file on purpose
    (python -m cluster_secrets plan homelab [--new-stack] --output tests/golden/...) and say why.
    """
    assert plan_text("homelab", new_stack=new_stack) == (ROOT / "tests" / "golden" / golden).read_text()


def test_plan_of_a_second_cluster_reads_its_primarys_plan():
    state = yaml.safe_load(plan_text("homelab-2"))
    assert len(state["resources"]) == 14
    assert not any(r["type"].startswith(("onepassword:", "random:")) for r in state["resources"])
    assert state["outputs"]["chartVersions"] == {"connect": "2.4.1", "externalSecrets": "2.9.0", "argocd": "10.1.1"}
    assert state["reads"] == [
        "pulumi:pulumi:StackReference organization/cluster-secrets/homelab",
        "pulumi:pulumi:StackReference organization/cluster-secrets/homelab-2",
    ]
