"""`status`: the chain checks against an in-memory cluster, and `run` against the fake `pulumi` CLI.

No real cluster here: the end-to-end suite (e2e/) runs `status` against one.
"""

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cluster_secrets import converge, status
from cluster_secrets.errors import UsageError
from cluster_secrets.status import Obj, Target
from components.outputs import ARGOCD_ADMIN_PASSWORD_MTIME as MTIME_OUTPUT
from tests.conftest import ROOT
from tests.fake_cluster import CANARY_HASH, CANARY_KEY, MTIME, FakeCluster, b64, ready
from tests.test_deploy import FakeCli

CANARY_PASSWORD = "canary-admin-password-in-state"
TARGET = Target("homelab", "onepassword", "eso", "auto")
NOW = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)  # half an hour after the last sync


def healthy_outputs() -> dict[str, Any]:
    return {
        "connectHost": "http://onepassword-connect.onepassword.svc.cluster.local:8080",
        "secretStoreName": "one-secretstore",
        "argocdNamespace": "argocd",
        "argocdCreateSecret": False,
        "argocdSecretSynced": True,
        "chartVersions": {"connect": "1.17.0", "externalSecrets": "0.12.1", "argocd": "10.1.1"},
        MTIME_OUTPUT: MTIME,
    }


def store(cluster: FakeCluster) -> Obj:
    return cluster.object(status.ESO_GROUP, "v1beta1", "clustersecretstores", "one-secretstore", None)


def external_secret(cluster: FakeCluster) -> Obj:
    return cluster.object(status.ESO_GROUP, "v1beta1", "externalsecrets", "argocd-secret", "argocd")


def secret(cluster: FakeCluster) -> Obj:
    return cluster.object("secret", "argocd", "argocd-secret")


def run_status(cluster: FakeCluster, stack_outputs: Mapping[str, Any]) -> tuple[int, str]:
    lines: list[str] = []
    code = status.run(
        ROOT,
        "homelab",
        {"KUBECONFIG": str(ROOT / "Pulumi.homelab.yaml")},  # any existing file: the fake ignores it
        lines.append,
        lines.append,
        connect=lambda path, context: cluster,
        stack_of=lambda project, stack, environ, say: status.StackView(dict(stack_outputs), {"resources": []}),
        clock=lambda: NOW,
    )
    return code, "\n".join(lines)


def line_of(text: str, link: str) -> str:
    return next(line for line in text.splitlines() if line[:16].rstrip() == link)


def state_of(line: str) -> str:
    return line[17:23].rstrip()


def test_a_healthy_chain_is_all_ok():
    code, text = run_status(FakeCluster(), healthy_outputs())
    assert code == converge.EXIT_OK, text
    body = text.splitlines()[1:]
    assert [line[:16].rstrip() for line in body] == [
        "connect",
        "eso",
        "secret store",
        "external secret",
        "argocd-secret",
        "password mtime",
        "hand-off",
        "argocd server",
        "drift",
    ]
    assert all(state_of(line) == "OK" for line in body), text
    assert "last synced 2026-11-28T10:00:00Z" in line_of(text, "external secret")
    assert MTIME in line_of(text, "password mtime")
    assert converge.Phase.HANDED_OVER.value in line_of(text, "hand-off")


def test_eso_from_0_16_0_is_read_as_v1():
    stack_outputs = healthy_outputs()
    stack_outputs["chartVersions"]["externalSecrets"] = "2.9.0"
    code, text = run_status(FakeCluster(eso_version="v1"), stack_outputs)
    assert code == converge.EXIT_OK, text
    assert "(external-secrets.io/v1)" in line_of(text, "secret store")
    # The same cluster read with the old API version finds nothing.
    code, text = run_status(FakeCluster(eso_version="v1"), healthy_outputs())
    assert code == converge.EXIT_FAILED
    assert "not found" in line_of(text, "secret store")


Breaker = Callable[[FakeCluster, dict[str, Any]], object]


def _scale(name: str, ready_replicas: int, replicas: int = 1) -> Breaker:
    namespace = {"onepassword-connect": "onepassword", "external-secrets": "eso"}.get(name, "argocd")

    def change(cluster: FakeCluster, stack_outputs: dict[str, Any]) -> None:
        cluster.objects[("deployment", namespace, name)] = {
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready_replicas} if ready_replicas else {},
        }

    return change


def _drop_owner(cluster: FakeCluster, stack_outputs: dict[str, Any]) -> None:
    secret(cluster)["metadata"]["ownerReferences"] = []


def _foreign_owner(cluster: FakeCluster, stack_outputs: dict[str, Any]) -> None:
    secret(cluster)["metadata"]["ownerReferences"][0]["uid"] = "another-uid"


BROKEN: dict[str, tuple[str, Breaker, str]] = {
    "connect not ready": ("connect", _scale("onepassword-connect", 0), "0/1 replicas ready"),
    "connect scaled to 0": ("connect", _scale("onepassword-connect", 0, 0), "scaled to 0"),
    "connect missing": (
        "connect",
        lambda c, o: c.objects.pop(("deployment", "onepassword", "onepassword-connect")),
        "not found",
    ),
    "eso not ready": ("eso", _scale("external-secrets", 0), "0/1 replicas ready"),
    "store not ready": (
        "secret store",
        lambda c, o: store(c).update(status=ready("InvalidProviderConfig", ok=False)),
        "not Ready (InvalidProviderConfig)",
    ),
    "store without status": ("secret store", lambda c, o: store(c).pop("status"), "no Ready condition yet"),
    "external secret not ready": (
        "external secret",
        lambda c, o: external_secret(c)["status"].update(ready("SecretSyncedError", ok=False)),
        "not Ready (SecretSyncedError), last synced 2026-11-28T10:00:00Z",
    ),
    "external secret not synced for 3 hours": (
        "external secret",
        lambda c, o: external_secret(c)["status"].update(refreshTime="2026-11-28T07:30:00Z"),
        "Ready, but last synced 2026-11-28T07:30:00Z, 180 minutes ago: more than twice its refreshInterval",
    ),
    "external secret missing": (
        "external secret",
        lambda c, o: c.objects.pop((status.ESO_GROUP, "v1beta1", "externalsecrets", "argocd-secret", "argocd")),
        "not found",
    ),
    "secret missing": ("argocd-secret", lambda c, o: c.objects.pop(("secret", "argocd", "argocd-secret")), "not found"),
    "secret not controlled": ("argocd-secret", _drop_owner, "not controlled by ExternalSecret argocd-secret"),
    "secret controlled by another": ("argocd-secret", _foreign_owner, "not controlled by ExternalSecret"),
    "no keep annotation": (
        "argocd-secret",
        lambda c, o: secret(c)["metadata"].pop("annotations"),
        "no helm.sh/resource-policy: keep annotation",
    ),
    "extra key": (
        "argocd-secret",
        lambda c, o: secret(c)["data"].update({"dex.github.clientSecret": b64("canary-extra")}),
        "unexpected keys: dex.github.clientSecret",
    ),
    "missing key": (
        "argocd-secret",
        lambda c, o: secret(c)["data"].pop("server.secretkey"),
        "keys missing: server.secretkey",
    ),
    "stale mtime": (
        "password mtime",
        lambda c, o: o.update({MTIME_OUTPUT: "2026-11-28T11:00:00Z"}),
        f"is {MTIME} in the cluster but 2026-11-28T11:00:00Z in state",
    ),
    "mtime not in state": ("password mtime", lambda c, o: o.pop(MTIME_OUTPUT), "unknown, run up"),
    "hand-off not done": (
        "hand-off",
        lambda c, o: o.update(argocdCreateSecret=True),
        converge.Phase.SYNCED.value,
    ),
    "argocd server not ready": ("argocd server", _scale("argocd-server", 0, 2), "0/2 replicas ready"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_broken_link_says_what_and_what_to_do(case):
    link, breaks, expected = BROKEN[case]
    cluster, stack_outputs = FakeCluster(), healthy_outputs()
    breaks(cluster, stack_outputs)
    code, text = run_status(cluster, stack_outputs)
    assert code == converge.EXIT_FAILED, text
    line = line_of(text, link)
    assert state_of(line) == "BROKEN"
    assert expected in line
    if "unknown" not in expected:
        assert "Fix: " in line
    # Every other link of the chain is still OK (a missing Secret also leaves no mtime to compare).
    others = [x for x in text.splitlines()[1:] if x != line]
    if case != "secret missing":
        assert all(state_of(x) == "OK" for x in others), text
    assert CANARY_HASH not in text and CANARY_KEY not in text


@pytest.mark.parametrize(
    ("interval", "synced_at", "overdue"),
    [
        ("1h", "2026-11-28T08:30:00Z", False),  # exactly twice the interval: one refresh may be in flight
        ("1h", "2026-11-28T08:29:59Z", True),
        ("30m", "2026-11-28T09:29:00Z", True),
        ("1h30m", "2026-11-28T07:30:00Z", False),
        ("0", "2020-01-01T00:00:00Z", False),  # 0: ESO never refreshes, so no sync is ever overdue
        ("weekly", "2020-01-01T00:00:00Z", False),  # not a duration status can read: no judgement
        ("1h", "not a time", False),
    ],
)
def test_an_overdue_sync_is_judged_against_the_refresh_interval(interval, synced_at, overdue):
    cluster = FakeCluster()
    external_secret(cluster)["spec"]["refreshInterval"] = interval
    external_secret(cluster)["status"]["refreshTime"] = synced_at
    line = next(x for x in status.check_chain(healthy_outputs(), TARGET, cluster, NOW) if x.link == "external secret")
    assert line.ok is not overdue, line
    assert ("more than twice its refreshInterval" in line.text) is overdue
    if overdue:
        assert "logs deployment/external-secrets" in line.text


def test_a_new_stack_says_run_up():
    code, text = run_status(FakeCluster(), {})
    assert code == converge.EXIT_FAILED
    assert "./cluster-secrets up homelab" in line_of(text, "secret store")
    assert converge.Phase.NEW.value in line_of(text, "hand-off")


def test_hand_off_target_follows_the_create_secret_mode():
    stack_outputs = {**healthy_outputs(), "argocdCreateSecret": True}
    lines = status.check_chain(stack_outputs, Target("homelab", "onepassword", "eso", "true"), FakeCluster(), NOW)
    assert all(line.ok for line in lines)


def test_no_secret_value_is_ever_printed():
    """Canaries in every value of argocd-secret, in every state of the chain: none is printed."""
    canaries = [CANARY_HASH, CANARY_KEY, "canary-extra"]
    outputs = []
    for _, breaks, _ in BROKEN.values():
        cluster, stack_outputs = FakeCluster(), healthy_outputs()
        breaks(cluster, stack_outputs)
        outputs.append(run_status(cluster, stack_outputs)[1])
    text = "\n".join(outputs)
    for canary in canaries:
        assert canary not in text and b64(canary) not in text


def test_kubeconfig_file_follows_the_stack_then_the_environment(tmp_path: Path, monkeypatch):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.write_text("{}")
    theirs.write_text("{}")
    assert status.kubeconfig_file(str(mine), {"KUBECONFIG": str(theirs)}) == str(mine)
    assert status.kubeconfig_file("", {"KUBECONFIG": f"{theirs}{os.pathsep}{mine}"}) == f"{theirs}{os.pathsep}{mine}"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("{}")
    assert status.kubeconfig_file("", {}) == str(tmp_path / ".kube" / "config")
    with pytest.raises(UsageError, match="no kubeconfig file at"):
        status.kubeconfig_file(str(tmp_path / "absent"), {})


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "homelab", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "homelab",
            }
        )
    )
    return path


def test_the_adapter_reports_an_unreachable_cluster_and_an_unknown_context(tmp_path: Path):
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:9")
    with pytest.raises(status.ClusterError, match="Deployment onepassword/onepassword-connect"):
        status.KubeCluster(str(path), "homelab").deployment("onepassword", "onepassword-connect")
    with pytest.raises(status.ClusterError, match="cannot use context 'elsewhere'"):
        status.KubeCluster(str(path), "elsewhere")


@contextmanager
def process_environ(environ: Mapping[str, str]) -> Iterator[None]:
    """The Automation API hands os.environ to the CLI; `run` reads `environ`. Keep them one."""
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_run_reads_outputs_through_the_cli_and_drops_secret_ones(tmp_path: Path):
    cli = FakeCli(tmp_path)
    (cli.project / ".pulumi-state").mkdir()
    state = {"stacks": {"homelab": {"outputs": {**healthy_outputs(), "argocdAdminPassword": CANARY_PASSWORD}}}}
    (cli.home / "state.json").write_text(json.dumps(state))
    seen: list[Mapping[str, Any]] = []

    def stack_of(project: Path, stack: str, environ: Mapping[str, str], say: Callable[[str], None]) -> status.StackView:
        found = status.read_stack(project, stack, environ, say)
        seen.append(found.outputs)
        return found

    lines: list[str] = []
    environ = {**cli.environ(), "KUBECONFIG": str(kubeconfig(tmp_path / "config", "https://127.0.0.1:9"))}
    with process_environ(environ):
        code = status.run(
            cli.project,
            "homelab",
            environ,
            lines.append,
            lines.append,
            lambda p, c: FakeCluster(),
            stack_of,
            lambda: NOW,
        )
        missing = status.run(
            cli.project, "elsewhere", environ, lines.append, lines.append, lambda p, c: FakeCluster(), stack_of
        )
    text = "\n".join(lines)
    assert code == converge.EXIT_OK, text
    assert seen[0] == healthy_outputs()  # the admin password, a secret output, is dropped on reading
    assert CANARY_PASSWORD not in text
    assert missing == converge.EXIT_USAGE
    assert "No stack file Pulumi.elsewhere.yaml" in text
    assert "stack init" not in cli.commands()  # status never creates a stack


def test_run_on_a_stack_never_deployed_and_without_the_cli(tmp_path: Path):
    cli = FakeCli(tmp_path)
    lines: list[str] = []
    with process_environ(cli.environ()):
        code = status.run(cli.project, "homelab", cli.environ(), lines.append, lines.append)
        assert code == converge.EXIT_USAGE
        assert "stack homelab does not exist in" in lines[-1] and "./cluster-secrets up homelab" in lines[-1]
    assert "stack init" not in cli.commands()
    code = status.run(
        cli.project, "homelab", {**cli.environ(), "PATH": str(tmp_path / "nowhere")}, lines.append, lines.append
    )
    assert code == converge.EXIT_NO_CLI


def test_an_unreachable_cluster_is_an_environment_error(tmp_path: Path):
    lines: list[str] = []
    code = status.run(
        ROOT,
        "homelab",
        {"KUBECONFIG": str(kubeconfig(tmp_path / "config", "https://127.0.0.1:9"))},
        lines.append,
        lines.append,
        stack_of=lambda project, stack, environ, say: status.StackView(healthy_outputs(), {"resources": []}),
    )
    assert code == converge.EXIT_USAGE
    assert lines[-1].startswith("error: reading Deployment onepassword/onepassword-connect")


class FakeApiServer(ThreadingHTTPServer):
    """Answers GETs from a table of API paths, as the Kubernetes API does: JSON, or 404 Status."""

    def __init__(self, objects: Mapping[str, Obj]):
        self.objects = objects
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                server.paths.append(path)
                found = server.objects.get(path)
                code = 200 if found is not None else 404
                body = json.dumps(found if found is not None else {"kind": "Status", "code": 404}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def api_deployment(name: str, image: str) -> Obj:
    """A ready one-replica Deployment as the API serves it (the client needs selector and containers)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"spec": {"containers": [{"name": name, "image": image}]}},
        },
        "status": {"replicas": 1, "readyReplicas": 1},
    }


def test_the_adapter_reads_the_api_paths_of_each_object(tmp_path: Path):
    """The kubernetes client against a stand-in API server: the paths it asks for, and the dicts it returns."""
    fake = FakeCluster()
    objects = {
        "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect": api_deployment(
            "onepassword-connect", "1password/connect-api"
        ),
        "/apis/apps/v1/namespaces/eso/deployments/external-secrets": api_deployment(
            "external-secrets", "external-secrets"
        ),
        "/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore": store(fake),
        "/apis/external-secrets.io/v1beta1/namespaces/argocd/externalsecrets/argocd-secret": external_secret(fake),
        "/api/v1/namespaces/argocd/secrets/argocd-secret": {"apiVersion": "v1", "kind": "Secret", **secret(fake)},
    }
    server = FakeApiServer(objects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = kubeconfig(tmp_path / "config", f"http://127.0.0.1:{server.server_port}")
        cluster = status.KubeCluster(str(path), "homelab")
        lines = status.check_chain(healthy_outputs(), TARGET, cluster, NOW)
    finally:
        server.shutdown()
    assert [(line.link, line.ok) for line in lines][:7] == [
        ("connect", True),
        ("eso", True),
        ("secret store", True),
        ("external secret", True),
        ("argocd-secret", True),
        ("password mtime", True),
        ("hand-off", True),
    ]
    assert "not found" in lines[7].text  # argocd-server is not in the table: a 404 is None
    assert server.paths == [*objects, "/apis/apps/v1/namespaces/argocd/deployments/argocd-server"]


REPO_URL = "https://git.example/homelab-gitops.git"
GITOPS = Target("homelab", "onepassword", "eso", "auto", gitops_repo_url=REPO_URL, gitops_credentials_item="gitops-bot")
ROOT_KEY = (status.ARGOCD_GROUP, status.ARGOCD_VERSION, "applications", "root", "argocd")
REPOSITORY_KEY = (status.ESO_GROUP, "v1beta1", "externalsecrets", "gitops-repository", "argocd")


def gitops_cluster(application_status: dict[str, Any] | None) -> FakeCluster:
    """A healthy chain with GitOps: the repository's ExternalSecret Ready, `root` with this status."""
    cluster = FakeCluster()
    cluster.objects[REPOSITORY_KEY] = {"spec": {"refreshInterval": "1h"}, "status": {**ready("SecretSynced")}}
    cluster.objects[ROOT_KEY] = {"status": application_status} if application_status is not None else {}
    return cluster


SYNCED = {"sync": {"status": "Synced", "revision": "0a3a6eea934b64f1c29c"}, "health": {"status": "Healthy"}}
REFUSED = {
    "sync": {"status": "Unknown"},
    "health": {"status": "Healthy"},
    "conditions": [
        {
            "type": "ComparisonError",
            "message": "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: "
            "code = Unknown desc = failed to list refs: authentication required: Unauthorized",
        }
    ],
}


def gitops_text(cluster: FakeCluster, target: Target = GITOPS) -> tuple[list[status.Line], str]:
    lines = status.check_chain(healthy_outputs(), target, cluster, NOW)
    return lines, "\n".join(map(str, lines))


def test_gitops_adds_the_repository_credentials_and_the_root_application():
    lines, text = gitops_text(gitops_cluster(SYNCED))
    assert [line.link for line in lines][-2:] == ["gitops creds", "gitops"]
    assert all(line.ok for line in lines), text
    assert f"Application argocd/root ({REPO_URL}) Synced at 0a3a6eea934b, Healthy" in line_of(text, "gitops")
    assert "ExternalSecret argocd/gitops-repository" in line_of(text, "gitops creds")
    # Without credentials from 1Password there is no ExternalSecret to check; without a URL, no GitOps.
    lines, _ = gitops_text(
        gitops_cluster(SYNCED), Target("homelab", "onepassword", "eso", "auto", gitops_repo_url=REPO_URL)
    )
    assert [line.link for line in lines][-2:] == ["argocd server", "gitops"]
    lines, _ = gitops_text(gitops_cluster(SYNCED), TARGET)
    assert lines[-1].link == "argocd server"


def test_refused_credentials_name_the_repository_the_item_and_the_refresh():
    lines, text = gitops_text(gitops_cluster(REFUSED))
    line = line_of(text, "gitops")
    assert state_of(line) == "BROKEN"
    assert f"Application argocd/root ({REPO_URL}): the repository refused the credentials" in line
    assert "authentication required" in line
    assert "in the 1Password item gitops-bot" in line
    assert "annotate externalsecret gitops-repository cluster-secrets.io/refreshed-at=$(date +%s) --overwrite" in line
    assert "annotate application root argocd.argoproj.io/refresh=hard --overwrite" in line
    # A public repository (no credentials item) that asks for a login: the fix is to give it one.
    lines, text = gitops_text(
        gitops_cluster(REFUSED), Target("homelab", "onepassword", "eso", "auto", gitops_repo_url=REPO_URL)
    )
    assert "set gitopsCredentialsItem" in line_of(text, "gitops")


@pytest.mark.parametrize(
    ("application_status", "expected"),
    [
        (None, "not found"),
        ({}, "has no status: no application controller has looked at it"),
        ({"sync": {"status": "OutOfSync"}, "health": {"status": "Progressing"}}, "OutOfSync, Progressing"),
        ({**SYNCED, "health": {"status": "Degraded"}}, "Synced, Degraded"),
        (
            {**SYNCED, "operationState": {"phase": "Failed", "message": "one or more objects failed to apply"}},
            "the last sync Failed: one or more objects failed to apply",
        ),
        (
            {**SYNCED, "conditions": [{"type": "InvalidSpecError", "message": "app path does not exist"}]},
            "InvalidSpecError: app path does not exist. Fix: kubectl -n argocd describe application root",
        ),
    ],
)
def test_a_root_application_not_synced_and_healthy_is_broken(application_status, expected):
    cluster = gitops_cluster(application_status)
    if application_status is None:
        cluster.objects.pop(ROOT_KEY)
    lines, text = gitops_text(cluster)
    line = line_of(text, "gitops")
    assert state_of(line) == "BROKEN"
    assert expected in line, line


def test_a_warning_condition_does_not_break_the_link():
    warned = {**SYNCED, "conditions": [{"type": "OrphanedResourceWarning", "message": "1 orphaned resource"}]}
    lines, text = gitops_text(gitops_cluster(warned))
    assert state_of(line_of(text, "gitops")) == "OK", text
