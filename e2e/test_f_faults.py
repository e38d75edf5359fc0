"""Scenario f: faults. A title the vault already holds, Connect down or failing during `up`, ESO
stopped during the first run, and `destroy`, on a stack of their own (`e2e-faults`, cluster 2,
working vault E2EFaults).

The tests run in order on one stack: each starts from where the previous one left it.
"""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import FAULTS_VAULT, Connect, Deployment, deployment
from e2e.harness import FIGURES, ready, secret_data

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
STORE = "/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore"


@pytest.fixture(scope="module")
def faults(workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]) -> Iterator[Deployment]:
    settings = {"workingVault": FAULTS_VAULT, "storeVaults": {FAULTS_VAULT: 1}}
    with deployment("e2e-faults", 2, "homelab", workdir, charts, connect, project, **settings) as result:
        yield result


class When(threading.Thread):
    """Runs `action` once, the moment `condition` holds (polled every 0.2 s), until stopped."""

    def __init__(self, condition: Callable[[], bool], action: Callable[[], None]):
        super().__init__(daemon=True)
        self.condition, self.action = condition, action
        self.fired = threading.Event()
        self._halt = threading.Event()  # not `_stop`: that name is Thread's own method
        self.start()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            try:
                if self.condition():
                    self.action()
                    self.fired.set()
                    return
            except Exception:  # noqa: BLE001 - not there yet
                continue

    def stop(self) -> bool:
        self._halt.set()
        self.join(timeout=10)
        return self.fired.is_set()


def test_a_title_the_vault_holds_already_stops_preview_and_up_before_anything_is_made(
    faults: Deployment, connect: Connect
) -> None:
    """The reference steps make `argocd-secret` by hand; the real provider would post a second one,
    and ESO would refuse both (cluster_secrets/preflight.py)."""
    standin = connect.standin
    standin.add_item(FAULTS_VAULT, "argocd-secret", "SECURE_NOTE")
    try:
        for command in ("preview", "up"):
            run = faults.tool(command, f"f: a title the vault holds, {command}")
            assert run.code == 2, f"{command} did not stop (its output is above)"
            assert (
                "Stack e2e-faults would create what exists already, made outside it (nothing was changed)" in run.output
            )
            assert f"1Password item 'argocd-secret' in vault '{FAULTS_VAULT}' (owner: nobody)" in run.output
            assert "got 2" in run.output and "./cluster-secrets adopt e2e-faults" in run.output
            assert "argo-admin" not in run.output
            assert [route for route in run.requests if not route.startswith("GET ")] == []
        assert [item["title"] for item in standin.items(FAULTS_VAULT)] == ["argocd-secret"]
        assert faults.outputs() == {}
        assert faults.get("/api/v1/namespaces/argocd") is None
    finally:
        standin.delete_item(FAULTS_VAULT, "argocd-secret")
        standin.synced()


@pytest.mark.parametrize("fault", ["down", 429, 500])
def test_connect_down_or_failing_stops_a_fresh_up_before_anything_is_registered(
    faults: Deployment, connect: Connect, fault: Any
) -> None:
    standin = connect.standin
    if fault == "down":
        standin.go_down()
    else:
        standin.fail_with(fault)
    try:
        run = faults.tool("up", f"f: Connect {fault} on a new stack")
    finally:
        standin.recover()
    # The tool's preflight reads the working vault first, and says so.
    assert run.code == 1
    assert "error: before up, reading 1Password:" in run.output
    assert faults.outputs() == {}
    assert faults.get("/api/v1/namespaces/argocd") is None


def test_eso_stopped_in_the_first_run_fails_on_the_external_secret_wait(faults: Deployment) -> None:
    # ESO works until the store is Ready, then stops: only the ExternalSecret is left waiting.
    when = When(lambda: ready(faults.get(STORE)), faults.eso.hold)
    try:
        started = time.monotonic()
        run = faults.tool("up", "f: ESO stopped in run 1")
    finally:
        faults.eso.release()
        fired = when.stop()
    FIGURES.note(f"f: `up` with ESO stopped gave up after {time.monotonic() - started:.0f}s")
    assert fired, "the store never became Ready"
    assert run.code == 1
    assert "argocd-external-secret" in run.output
    assert faults.outputs().get("argocdSecretSynced") is not True


def test_connect_failing_in_the_second_run_leaves_argocd_secret_and_the_handoff_alone(
    faults: Deployment, connect: Connect
) -> None:
    snapshot: dict[str, Any] = {}

    def between_runs(line: str) -> None:
        # The tool says so after run 1 and before run 2, which reads 1Password first.
        if line.startswith("Run 1 moved the stack to") and not snapshot:
            connect.standin.fail_with(500)
            secret = faults.get(ARGOCD_SECRET)
            snapshot.update(uid=secret["metadata"]["uid"], data=secret_data(secret))

    try:
        run = faults.tool("up", "f: Connect 500 from run 2", on_line=between_runs)
    finally:
        connect.standin.recover()
    assert snapshot, "run 1 did not move the stack on"
    assert run.code == 1
    assert "1Password: could not read vault 'InitHomeLab'" in run.output
    outputs = faults.outputs()
    assert (outputs["argocdCreateSecret"], outputs["argocdSecretSynced"]) == (True, True)
    secret = faults.get(ARGOCD_SECRET)
    assert secret["metadata"]["uid"] == snapshot["uid"]
    assert secret_data(secret) == snapshot["data"]

    run = faults.tool("up", "f: up after Connect recovered")
    assert run.code == 0, "up failed (its output is above)"
    assert run.runs == 1
    outputs = faults.outputs()
    assert (outputs["argocdCreateSecret"], outputs["argocdSecretSynced"]) == (False, True)


def test_destroy_leaves_only_the_crds_kept_on_purpose(faults: Deployment, connect: Connect) -> None:
    run = faults.tool("destroy", "f: destroy", extra=["--yes"])  # no terminal to confirm on
    assert run.code == 0, "destroy failed (its output is above)"
    assert connect.standin.items(FAULTS_VAULT) == []
    assert faults.get(STORE) is None
    for namespace in ("onepassword", "eso", "argocd"):
        found = faults.get(f"/api/v1/namespaces/{namespace}")
        assert found is None or found["metadata"].get("deletionTimestamp"), namespace
    crds = faults.cluster.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    assert {c["metadata"]["name"] for c in crds} >= {
        "externalsecrets.external-secrets.io",
        "clustersecretstores.external-secrets.io",
    }
    # Kept on purpose, and nothing else: ESO's CRDs (the keep annotation), Argo CD's (the chart's
    # crds.keep, which the program owns so an uninstall keeps every Application) and Connect's
    # OnePasswordItem (in the chart's crds/ folder, which Helm installs and never deletes).
    kept = {c["spec"]["group"] for c in crds}
    assert kept <= {"external-secrets.io", "generators.external-secrets.io", "argoproj.io", "onepassword.com"}, kept
