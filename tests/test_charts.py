"""The stack's charts against their repositories (cluster_secrets/charts.py): a pinned version the
repository lacks, and Helm values keys a chart does not have, from the chart packages of
../shared/upstream/charts (a folder with an index.yaml, as `plan --render --charts` takes it)."""

import shutil
from pathlib import Path

import pytest

from cluster_secrets import charts
from cluster_secrets.__main__ import main
from cluster_secrets.stack_files import project_values, stack_config
from components.config import load_config
from tests.conftest import ROOT, copy_project, run_stack, upstream

RELEASE = "kubernetes:helm.sh/v3:Release"


def check(**config: object) -> tuple[list[str], list[str]]:
    run = run_stack(config=config)
    releases = [r.plain for r in run.by_type(RELEASE)]
    stack = load_config(project_values(stack_config(ROOT, "homelab", config)), "homelab")
    return charts.check(releases, stack, charts.Repositories(local=upstream("charts")))


def test_the_homelab_charts_are_in_the_repository_and_take_their_values() -> None:
    assert check() == ([], [])


def test_a_version_the_repository_lacks_is_an_error_naming_its_key() -> None:
    errors, _ = check(esoChartVersion="0.99.0")
    (error,) = errors
    assert error.startswith("cluster-secrets:esoChartVersion: 0.99.0 is not a version of chart external-secrets in ")
    assert "its versions there include" in error and "0.12.1" in error


def test_a_values_key_the_chart_lacks_is_a_warning_with_the_closest_key() -> None:
    errors, warnings = check(argocdValues={"sever": {"ingress": {"enabled": True}}, "server": {"replicaz": 2}})
    assert errors == []
    assert sorted(warnings) == [
        "cluster-secrets:argocdValues: server.replicaz is not a value of chart argo-cd 10.1.1 (did you mean "
        "server.replicas?)",
        "cluster-secrets:argocdValues: sever is not a value of chart argo-cd 10.1.1 (did you mean server?)",
    ]


def test_free_form_maps_take_any_key() -> None:
    # configs.params feeds argocd-cmd-params-cm; podAnnotations is an empty map in the chart.
    values = {"configs": {"params": {"server.basehref": "/argocd"}}}
    assert check(argocdValues=values, connectValues={"connect": {"podAnnotations": {"team": "infra"}}}) == ([], [])


def test_charts_from_oci_are_not_checked() -> None:
    repositories = charts.Repositories()  # no local folder: an OCI repository would be asked, but is not
    release = {"chart": "argo-cd", "version": "0.0.1", "repositoryOpts": {"repo": "oci://ghcr.io/argoproj"}}
    stack = load_config(project_values(stack_config(ROOT, "homelab")), "homelab")
    assert charts.check([release], stack, repositories) == ([], [])


def test_a_package_downloaded_before_needs_no_index(tmp_path: Path) -> None:
    source = upstream("charts") / "argo-cd-10.1.1.tgz"
    shutil.copy(source, tmp_path / "argo-cd-10.1.1.tgz")
    repositories = charts.Repositories(cache_dir=tmp_path)
    release = {"chart": "argo-cd", "version": "10.1.1", "repositoryOpts": {"repo": "https://unreachable.invalid"}}
    stack = load_config(project_values(stack_config(ROOT, "homelab", {"argocdValues": {"sever": 1}})), "homelab")
    errors, warnings = charts.check([release], stack, repositories)
    assert errors == [] and warnings == [
        "cluster-secrets:argocdValues: sever is not a value of chart argo-cd 10.1.1 (did you mean server?)"
    ]


def test_plan_render_stops_on_a_version_the_charts_folder_lacks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if shutil.which("helm") is None and not (Path.home() / ".cache/cluster-secrets-e2e/bin/helm").exists():
        pytest.skip("plan --render needs helm: e2e/build-tools helm builds it")
    copy = copy_project(tmp_path / "project")
    stack_file = copy / "Pulumi.homelab.yaml"
    stack_file.write_text(stack_file.read_text().replace("argocdChartVersion: 10.1.1", "argocdChartVersion: 10.9.9"))
    code = main(["plan", "homelab", "--render", "--charts", str(upstream("charts")), "--program-dir", str(copy)])
    err = capsys.readouterr().err
    assert code == 2 and "cluster-secrets:argocdChartVersion: 10.9.9 is not a version of chart argo-cd" in err
