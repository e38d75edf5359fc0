"""render: the manifests of the program's Helm releases, rendered with the charts of ../shared/upstream/charts."""

import base64
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_secrets import desired, render
from cluster_secrets.errors import UsageError
from tests.conftest import ROOT, SHARED_UPSTREAM, upstream

CANARY = "canary-rendered-secret-5d1e"
CHARTS = SHARED_UPSTREAM / "charts"
INDEX = CHARTS / "index.yaml"
KEEP = {"helm.sh/resource-policy": "keep"}


@pytest.fixture(scope="module")
def charts() -> Path:
    """The chart folder, with helm at hand; else the test is skipped."""
    folder = upstream("charts")
    try:
        render.find_helm()
    except render.HelmMissing as error:
        pytest.skip(str(error))
    return folder


@functools.cache
def releases(stack: str, new_stack: bool = False) -> dict[str, dict[str, Any]]:
    """The Helm releases the program declares for a stack, by chart, as the plan prints them."""
    state = desired.of_stack(ROOT, stack, new_stack).state
    return {r["inputs"]["chart"]: r["inputs"] for r in state["resources"] if r["type"] == render.HELM_RELEASE}


def every_chart() -> list[tuple[str, str]]:
    if not INDEX.exists():
        return [("none", "")]  # the `charts` fixture skips
    entries = yaml.safe_load(INDEX.read_text())["entries"]
    return sorted((chart, str(entry["version"])) for chart, versions in entries.items() for entry in versions)


@functools.cache
def rendered(stack: str, chart: str, new_stack: bool = False, version: str = "") -> list[dict[str, Any]]:
    """What the chart of a stack's release renders (at `version` if given); once a session."""
    release = releases(stack, new_stack)[chart]
    return render.render_release({**release, "version": version or release["version"]}, CHARTS)


def named(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.mark.parametrize("chart,version", every_chart())
def test_every_chart_renders_the_same_bytes_twice_in_a_stable_order(charts, chart, version):
    manifests = rendered("homelab", chart, True, version)
    text = render.manifests_text(manifests)
    again = render.render_release({**releases("homelab", True)[chart], "version": version}, charts)
    assert render.manifests_text(again) == text
    assert text.startswith("---\napiVersion: ") and f"helm.sh/chart: {chart}-{version}\n" in text
    assert manifests == sorted(manifests, key=render._order)
    assert all(list(m) == sorted(m) for m in manifests)


@pytest.mark.parametrize(
    "stack,version,served",
    [("homelab", "0.12.1", {"v1beta1": True}), ("homelab-2", "2.9.0", {"v1": True, "v1beta1": False})],
)
def test_eso_crds_are_kept_and_serve_the_api_versions_of_their_chart(charts, stack, version, served):
    assert releases(stack)["external-secrets"]["version"] == version
    crds = named(rendered(stack, "external-secrets"), "CustomResourceDefinition")
    assert len(crds) == {"0.12.1": 16, "2.9.0": 25}[version]
    assert all(crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for crd in crds.values())
    for name in ("externalsecrets", "secretstores", "clustersecretstores", "clusterexternalsecrets"):
        versions = {v["name"]: v["served"] for v in crds[f"{name}.external-secrets.io"]["spec"]["versions"]}
        assert {v: versions[v] for v in ("v1", "v1beta1") if v in versions} == served
    assert all(v["schema"].startswith("sha256:") for crd in crds.values() for v in crd["spec"]["versions"])


def test_full_crds_keep_their_schemas(charts):
    release = releases("homelab", new_stack=True)["external-secrets"]
    crds = named(render.render_release(release, charts, full_crds=True), "CustomResourceDefinition")
    schema = crds["externalsecrets.external-secrets.io"]["spec"]["versions"][0]["schema"]
    assert "properties" in schema["openAPIV3Schema"]


@pytest.mark.parametrize("stack,version", [("homelab", "1.17.0"), ("homelab-2", "2.4.1")])
def test_connect_is_a_cluster_ip_service_reading_the_programs_credentials_secret(charts, stack, version):
    assert releases(stack)["connect"]["version"] == version
    manifests = rendered(stack, "connect")
    service = named(manifests, "Service")["onepassword-connect"]
    assert service["spec"]["type"] == "ClusterIP"
    assert {port["port"] for port in service["spec"]["ports"]} == {8080, 8081}
    assert named(manifests, "Secret") == {}  # the credentials are the program's own Secret
    assert "op-credentials" in render.manifests_text(manifests)


def test_argocd_secret_is_kept_on_a_new_stack_and_absent_once_handed_over(charts):
    new = rendered("homelab", "argo-cd", new_stack=True)
    assert named(new, "Secret")["argocd-secret"]["metadata"]["annotations"] == KEEP
    assert named(new, "ConfigMap")["argocd-cmd-params-cm"]["data"]["server.insecure"] == "true"
    assert "argocd-secret" not in named(rendered("homelab", "argo-cd"), "Secret")


def test_secret_data_is_masked_with_the_plans_marker(charts):
    release = releases("homelab", new_stack=True)["argo-cd"]
    values = {**release["values"], "configs": {"secret": {"createSecret": True, "extra": {"k": CANARY}}}}
    manifests = render.render_release({**release, "values": values}, charts)
    text = render.manifests_text(manifests)
    assert CANARY not in text and base64.b64encode(CANARY.encode()).decode() not in text
    assert named(manifests, "Secret")["argocd-secret"]["data"]["k"] == desired.SECRET_MARKER


def test_with_manifests_adds_what_each_release_renders(charts):
    state = desired.of_stack(ROOT, "homelab", new_stack=True).state
    rendered_state = render.with_manifests(state, charts)
    by_name = {r["name"]: r for r in rendered_state["resources"]}
    assert {name for name, r in by_name.items() if "manifests" in r} == {
        "argocd-release",
        "connect-release",
        "external-secrets-release",
    }
    assert by_name["argocd-release"]["manifests"] == rendered("homelab", "argo-cd", new_stack=True)
    assert "manifests" not in state["resources"][0]  # the state itself is left as it was


def test_without_helm_the_error_says_how_to_get_it(tmp_path):
    environ = {"PATH": str(tmp_path), "CLUSTER_SECRETS_E2E_CACHE": str(tmp_path / "e2e")}
    with pytest.raises(render.HelmMissing, match="e2e/build-tools helm") as raised:
        render.render_release({"chart": "connect", "version": "1.17.0"}, tmp_path, environ=environ)
    assert str(tmp_path / "e2e" / "bin" / "helm") in str(raised.value)
    assert isinstance(raised.value, UsageError)  # exit code 2


def test_the_helm_that_the_e2e_suite_builds_is_found(tmp_path):
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    assert render.find_helm({"PATH": "", "CLUSTER_SECRETS_E2E_CACHE": str(tmp_path)}) == str(helm)


def test_a_version_missing_from_the_index_names_chart_version_and_index(charts):
    release = {**releases("homelab")["external-secrets"], "version": "9.9.9"}
    with pytest.raises(render.RenderError, match=f"No chart external-secrets 9.9.9 in {charts}/index.yaml"):
        render.render_release(release, charts)


def test_a_folder_without_an_index_is_a_clean_error(tmp_path):
    with pytest.raises(render.RenderError, match=f"{tmp_path} is not a chart folder: it has no index.yaml"):
        render.chart_from_index(tmp_path, "connect", "1.17.0")


@pytest.fixture
def repository(charts, tmp_path, monkeypatch) -> Iterator[tuple[str, list[str]]]:
    """The chart folder served on loopback as a chart repository, and the paths it was asked for."""
    for home in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(home, str(tmp_path / home))
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, directory=str(charts), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            asked.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


def test_a_chart_from_its_repository_is_pulled_once_into_the_cache(charts, repository, tmp_path):
    url, asked = repository
    release = {**releases("homelab")["connect"], "repositoryOpts": {"repo": url}}
    first = render.render_release(release, cache_dir=tmp_path / "cache")
    assert "/connect-1.17.0.tgz" in asked
    asked.clear()
    assert render.render_release(release, cache_dir=tmp_path / "cache") == first
    assert asked == []
    assert first == render.render_release(release, charts)


def test_a_version_missing_from_the_repository_names_chart_version_and_repository(repository, tmp_path):
    url, _ = repository
    release = {**releases("homelab")["connect"], "version": "9.9.9", "repositoryOpts": {"repo": url}}
    with pytest.raises(render.RenderError, match=f"No chart connect 9.9.9 from {url}"):
        render.render_release(release, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.tgz"))
