"""Scenario n: runs that go wrong, on a stack of its own (`e2e-wrong`, cluster 6, its own vault).

- An `up` interrupted during the first run's Helm install, during the wait on the ExternalSecret
  argocd-secret (ESO's Connect a minute behind, so the wait lasts), and during the second run's
  upgrade of the Argo CD release: each with SIGINT to the tool's process group (a terminal's Ctrl-C)
  and separately with SIGKILL to it (the job killed outright). After SIGINT the tool says what state
  the stack is in and the command that continues (exit 130); after SIGKILL the run's lock, its
  unfinished operations and Pulumi's plugins stay behind. Either way the next `up` converges with no
  hand edit of the state (cluster_secrets/recovery.py, preflight.py), the hand-off never advances on
  the interrupted run, and argocd-secret, once it exists, is never deleted.
- Two `up`s at once: the second stops at once naming the lock and how to clear a stale one; the
  first converges, and the stack is whole afterwards (a preview changes nothing).
- Drift (cluster_secrets/drift.py): the ExternalSecret deleted, the store's spec edited and Connect
  scaled to 0 by hand: `status` and the drift check (`preview --refresh --expect-no-changes`) name
  them, `up` repairs them, and both pass afterwards. argocd-secret edited by hand: ESO puts it back.
  The argocd-secret item and the admin item edited in 1Password: `status` and the drift check name
  them before ESO copies the edit and after; a Ctrl-C during the preflight's refresh of them stops
  `up` there; the next `up` writes the stack's values back, ESO copies them into argocd-secret, and
  both pass afterwards.
"""

import base64
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from cluster_secrets import recovery
from cluster_secrets.converge import Phase, phase_of
from cluster_secrets.synced import REFRESH_ANNOTATION
from e2e.conftest import WRONG_VAULT, Connect, Deployment, SecretWatch, deployment
from e2e.controlplane import wait_until
from e2e.harness import FIGURES, Run, Secret, status_links

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
HELM_INSTALL = "create kubernetes:helm.sh/v3:Release"
ES_WAIT = "create kubernetes:external-secrets.io/v1beta1:ExternalSecret argocd-external-secret"
ARGOCD_UPGRADE = "run 2 from synced: update kubernetes:helm.sh/v3:Release argocd-release"
SIGNALS = [signal.SIGINT, signal.SIGKILL]
ESO_CLIENT = "eso-e2e"  # the Connect stand-in's name for this stack's ESO (homelab's Connect server)


@pytest.fixture(scope="module")
def wrong(workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]) -> Iterator[Deployment]:
    settings = {"workingVault": WRONG_VAULT, "storeVaults": {WRONG_VAULT: 1}}
    with deployment("e2e-wrong", 6, "homelab", workdir, charts, connect, project, **settings) as result:
        yield result


def fresh(stack: Deployment) -> None:
    """Nothing deployed: whatever an earlier test left is destroyed (a stack never deployed, at once)."""
    run = stack.tool("destroy", "n: destroy, for a fresh start", extra=["--yes"])
    assert run.code == 0, "destroy failed (its output is above)"


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("where", "line", "delay", "eso_late"),
    [
        ("during the first Helm install", HELM_INSTALL, 0, False),
        # ESO's Connect serving the new items a minute late: the ExternalSecret cannot turn Ready yet
        # (the store can: it only lists vaults), so `up` waits on it.
        ("during the ExternalSecret's wait", ES_WAIT, 5, True),
        ("during the second run's Argo CD upgrade", ARGOCD_UPGRADE, 0, False),
    ],
    ids=["helm-install", "external-secret-wait", "argocd-upgrade"],
)
def test_an_interrupted_up_is_continued_by_the_next_up(
    wrong: Deployment, connect: Connect, sig: signal.Signals, where: str, line: str, delay: float, eso_late: bool
) -> None:
    fresh(wrong)
    watch = SecretWatch(wrong.cluster)  # from before argocd-secret exists: it may be added, never deleted
    standin = connect.standin
    if eso_late:
        standin.synced()  # ESO's Connect has seen the last deployment's items deleted, then falls behind
        standin.set_sync_delay(60, client=ESO_CLIENT)
    try:
        run = wrong.tool("up", f"n: up, {sig.name} {where}", interrupt=(line, sig, delay))
        interrupted_outputs = wrong.outputs()
    finally:
        standin.set_sync_delay(standin.sync_delay, client=ESO_CLIENT)
    assert line in run.output, f"the run never got {where}"
    if sig == signal.SIGINT:
        assert run.code == 130, f"an interrupted up exited {run.code}"
        assert "Interrupted: `up` of stack e2e-wrong stopped" in run.output
        assert "Hand-off phase:" in run.output
        assert "Continue with: ./cluster-secrets up e2e-wrong" in run.output
    else:
        assert run.code == -signal.SIGKILL, f"a killed up exited {run.code}"
    if sig == signal.SIGKILL and eso_late:
        # `preview` names what the killed run left unfinished (the ExternalSecret's create), and leaves it.
        look = wrong.tool("preview", f"n: preview after {sig.name} {where}")
        assert "operation(s) an interrupted run left unfinished:" in look.output
        assert "creating kubernetes:external-secrets.io/v1beta1:ExternalSecret argocd-external-secret" in look.output
        assert "`./cluster-secrets up e2e-wrong` settles them before it changes anything." in look.output
    # The hand-off never advances on an interrupted run: the phase is the one the last finished run left.
    expected = Phase.SYNCED if line == ARGOCD_UPGRADE else Phase.NEW
    assert phase_of(interrupted_outputs) == expected, "the hand-off advanced on an interrupted run"

    recovered = wrong.tool("up", f"n: up after {sig.name} {where}")
    assert recovered.code == 0, f"up after {sig.name} {where} did not converge (its output is above)"
    if sig == signal.SIGKILL and eso_late:  # the create killed in flight, long enough to be recorded
        assert "Settling them before up: `pulumi refresh`" in recovered.output
    FIGURES.note(f"n: {sig.name} {where}: the next up converged in {recovered.seconds:.0f}s")
    assert phase_of(wrong.outputs()) == Phase.HANDED_OVER
    assert recovery.stack_locks(wrong.env["PULUMI_BACKEND_URL"], wrong.stack) == [], "a lock was left"
    # A killed run leaves Pulumi's plugins running (their own process groups): the next up stops them.
    assert recovery.orphaned_plugins() == [], "plugins of the killed run are still running"
    assert wrong.get(ARGOCD_SECRET) is not None
    events = watch.stop()
    assert "DELETED" not in events, f"argocd-secret was deleted: {events}"
    check = wrong.tool("preview", f"n: preview after {sig.name} {where}")
    assert check.code == 0 and "Preview of e2e-wrong: no changes." in check.output, "the stack is not whole"


def test_a_second_up_at_the_same_time_stops_at_once_naming_the_lock(wrong: Deployment) -> None:
    backend = wrong.env["PULUMI_BACKEND_URL"]
    first: list[Run] = []
    thread = threading.Thread(target=lambda: first.append(wrong.tool("up", "n: the first of two ups")))
    thread.start()
    wait_until(lambda: recovery.stack_locks(backend, wrong.stack), 120, "the first up to lock the stack")
    second = wrong.tool("up", "n: a second up at the same time")
    thread.join(600)
    assert second.code == 2, f"the second up exited {second.code}"
    assert second.seconds < 15, f"the second up took {second.seconds:.0f}s to stop"
    assert "Stack e2e-wrong is locked: another run" in second.output
    assert "pulumi cancel --stack e2e-wrong --yes" in second.output
    assert ".pulumi/locks/organization/cluster-secrets/e2e-wrong/" in second.output
    assert f"@{socket.gethostname()}, since " in second.output  # the user, host and time of the holder
    assert "run 1 from" not in second.output and "changed by hand" not in second.output  # Pulumi never ran
    assert first and first[0].code == 0, "the first up failed (its output is above)"
    check = wrong.tool("preview", "n: preview after two ups")
    assert check.code == 0 and "Preview of e2e-wrong: no changes." in check.output


ES_PATH = "/apis/external-secrets.io/v1beta1/namespaces/argocd/externalsecrets/argocd-secret"
STORE_PATH = "/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore"
CONNECT_PATH = "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect"
DRIFT_CHECK = ["--refresh", "--expect-no-changes"]


def test_drift_is_named_by_status_and_the_drift_check_and_repaired_by_up(wrong: Deployment) -> None:
    run = wrong.tool("status", "n: status before drift")
    assert run.code == 0, "the stack is not healthy before the drift (its output is above)"
    # By hand: the ExternalSecret deleted (Kubernetes collects argocd-secret with it), the store's
    # connectHost edited, Connect scaled to 0.
    wrong.cluster.api("DELETE", ES_PATH)
    wait_until(lambda: wrong.get(ARGOCD_SECRET) is None, 60, "argocd-secret to go with its ExternalSecret")
    elsewhere = {"spec": {"provider": {"onepassword": {"connectHost": "http://elsewhere.invalid:8080"}}}}
    wrong.cluster.api("PATCH", STORE_PATH, elsewhere)
    wrong.cluster.api("PATCH", CONNECT_PATH, {"spec": {"replicas": 0}})

    run = wrong.tool("status", "n: status with drift")
    assert run.code == 1
    links = status_links(run.output, ("connect", "external secret", "argocd-secret", "drift"))
    assert links["connect"][0] == "BROKEN" and "scaled to 0" in links["connect"][1]
    assert links["external secret"][0] == "BROKEN" and "not found" in links["external secret"][1]
    assert links["argocd-secret"][0] == "BROKEN"
    assert links["drift"][0] == "BROKEN"
    assert "ExternalSecret argocd/argocd-secret: deleted" in links["drift"][1]
    assert "ClusterSecretStore one-secretstore: spec.provider.onepassword.connectHost changed" in links["drift"][1]
    check = wrong.tool("preview", "n: the drift check, with drift", extra=DRIFT_CHECK)
    assert check.code == 1, "the drift check passed on a drifted stack"
    assert "ExternalSecret argocd/argocd-secret: deleted" in check.output  # the preflight names them

    run = wrong.tool("up", "n: up repairs the drift")
    assert run.code == 0, "up did not repair the drift (its output is above)"
    assert "changed by hand since the last up" in run.output
    assert "scaled back to 1" in run.output
    assert wrong.get(CONNECT_PATH)["spec"]["replicas"] == 1
    connect_host = wrong.get(STORE_PATH)["spec"]["provider"]["onepassword"]["connectHost"]
    assert connect_host == "http://onepassword-connect.onepassword.svc.cluster.local:8080"
    assert wrong.get(ARGOCD_SECRET) is not None
    run = wrong.tool("status", "n: status after up")
    assert run.code == 0, "status is not all OK after up repaired the drift (its output is above)"
    check = wrong.tool("preview", "n: the drift check, repaired", extra=DRIFT_CHECK)
    assert check.code == 0, "the drift check fails on a repaired stack (its output is above)"


def test_argocd_secret_edited_by_hand_is_put_back_by_eso(wrong: Deployment) -> None:
    before = wrong.get(ARGOCD_SECRET)["data"]
    wrong.cluster.api("PATCH", ARGOCD_SECRET, {"data": {"admin.password": "ZWRpdGVkLWJ5LWhhbmQ="}})
    # ESO keeps a hash of what it wrote and syncs again when the Secret differs from it.
    wait_until(lambda: wrong.get(ARGOCD_SECRET)["data"] == before, 60, "ESO to put argocd-secret back")
    run = wrong.tool("status", "n: status after argocd-secret was edited by hand")
    assert run.code == 0, "status is not all OK (its output is above)"


def hash_in(secret: dict) -> str:
    return base64.b64decode(secret["data"]["admin.password"]).decode()


def printed(output: str, **values: str) -> list[str]:
    """The names of `values` that `output` shows: names only, so a failure cannot show a value."""
    return [name for name, value in values.items() if value in output]


def test_the_items_edited_in_1password_are_named_and_written_back_by_up(wrong: Deployment, connect: Connect) -> None:
    stack_outputs = wrong.outputs()
    password = stack_outputs["argocdAdminPassword"].value  # a harness.Secret
    secret_item, admin_item = stack_outputs["argocdSecretItemTitle"], stack_outputs["argocdAdminItemTitle"]
    before = wrong.get(ARGOCD_SECRET)["data"]
    written = connect.item_fields(WRONG_VAULT, secret_item)
    # By hand, in 1Password: the hash of another password, and that password in the admin item,
    # renamed as well.
    someone_elses = bcrypt.hashpw(b"someone-elses-password", bcrypt.gensalt(10)).decode()
    connect.standin.edit_item(WRONG_VAULT, secret_item, {"admin.password": someone_elses})
    renamed = f"{admin_item}-renamed"
    connect.standin.edit_item(WRONG_VAULT, admin_item, {"password": "someone-elses-password"}, new_title=renamed)
    connect.standin.synced()  # as Connect serves them after its sync

    # Before ESO's hourly refresh copies it: the cluster is as it was, the items are not.
    run = wrong.tool("status", "n: status with the items edited in 1Password")
    assert run.code == 1
    assert run.requests == {"GET /v1/vaults/{vault}/items/{item}": 2}, "status reads each item once"
    assert wrong.get(ARGOCD_SECRET)["data"] == before
    drift_line = status_links(run.output, ("drift",))["drift"]
    assert drift_line[0] == "BROKEN"
    edited_secret_item = f"1Password item '{secret_item}' in vault '{WRONG_VAULT}': admin.password edited in 1Password"
    edited_admin_item = (
        f"1Password item '{admin_item}' in vault '{WRONG_VAULT}': title changed to '{renamed}' "
        "and password edited in 1Password"
    )
    assert edited_secret_item in drift_line[1] and edited_admin_item in drift_line[1]
    assert printed(run.output, hash=someone_elses, password="someone-elses-password") == []
    check = wrong.tool("preview", "n: the drift check, with the items edited", extra=DRIFT_CHECK)
    assert check.code == 1, "the drift check passed with the items edited in 1Password"
    assert edited_secret_item in check.output and edited_admin_item in check.output

    # ESO's refresh, made to come now: argocd-secret takes the edit.
    annotation = {"metadata": {"annotations": {REFRESH_ANNOTATION: str(time.time())}}}
    wrong.cluster.api("PATCH", ES_PATH, annotation)
    wait_until(lambda: hash_in(wrong.get(ARGOCD_SECRET)) == someone_elses, 60, "ESO to copy the edited hash")
    run = wrong.tool("status", "n: status with the edit copied into argocd-secret")
    assert run.code == 1
    links = status_links(run.output, ("argocd-secret", "drift"))
    assert links["argocd-secret"][0] == "BROKEN"
    assert "admin.password other than the stack wrote to the item" in links["argocd-secret"][1]
    assert links["drift"][0] == "BROKEN"

    # Ctrl-C during the preflight's own `pulumi refresh` of the items: cancelled and reported like
    # a run's, and nothing runs after it.
    refreshing = "Refreshing them from where they live first"
    run = wrong.tool("up", "n: up, SIGINT during the preflight's refresh", interrupt=(refreshing, signal.SIGINT, 0.5))
    assert refreshing in run.output, "the up never got to the preflight's refresh"
    assert run.code == 130, f"an up interrupted in its preflight exited {run.code}"
    assert "Interrupted: `up` of stack e2e-wrong stopped" in run.output
    assert "Continue with: ./cluster-secrets up e2e-wrong" in run.output
    assert "run 1 from" not in run.output, "up went on after the Ctrl-C"

    run = wrong.tool("up", "n: up writes the items back")
    assert run.code == 0, "up did not write the items back (its output is above)"
    assert edited_secret_item in run.output and edited_admin_item in run.output
    asked = "has admin.password other than the stack wrote to the item; asked ESO to sync again"
    assert asked in run.output, "up did not wait for ESO to copy the stack's hash back"
    assert recovery.stack_locks(wrong.env["PULUMI_BACKEND_URL"], wrong.stack) == [], "a lock was left"
    assert printed(run.output, hash=someone_elses, password=password) == []
    assert connect.item_fields(WRONG_VAULT, secret_item) == written
    assert connect.item_fields(WRONG_VAULT, admin_item)["password"] == Secret(password)
    # `up` returned once argocd-secret held the stack's values again (synced.py): no wait here.
    assert wrong.get(ARGOCD_SECRET)["data"] == before
    assert bcrypt.checkpw(password.encode(), hash_in(wrong.get(ARGOCD_SECRET)).encode())
    run = wrong.tool("status", "n: status after up wrote the items back")
    assert run.code == 0, "status is not all OK after up wrote the items back (its output is above)"
    check = wrong.tool("preview", "n: the drift check, items written back", extra=DRIFT_CHECK)
    assert check.code == 0, "the drift check fails after up wrote the items back (its output is above)"
