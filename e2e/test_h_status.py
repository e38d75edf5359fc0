"""Scenario h: `./cluster-secrets status` (cluster_secrets/status.py) against the converged primary
stack `e2e`: all OK when healthy; with ESO stopped and argocd-secret deleted by hand, the
argocd-secret link BROKEN with what to do (exit 1); once ESO runs again it recreates the Secret and
status is back to OK.

It runs after scenarios a-g on the same stack and cluster (`primary` lives for the whole session and
files run in name order; f destroys only its own stack `e2e-faults`, e's `e2e-2` has its own cluster),
so `e2e` is converged here, its ESO upgraded by d where d ran.
"""

import time

from components.admin_secret import ARGOCD_SECRET_KEYS
from e2e.conftest import Deployment
from e2e.controlplane import wait_until
from e2e.harness import FIGURES, Run, secret_data, status_links

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
# The links status prints, in order (status.check_chain): `<link:16> <OK|BROKEN:6> <text>`.
LINKS = (
    "connect",
    "eso",
    "secret store",
    "external secret",
    "argocd-secret",
    "password mtime",
    "hand-off",
    "argocd server",
)
RECOVERY_TIMEOUT = 180  # s: ESO's kubelet restarts the controller (up to 90 s to be ready), then it syncs


def chain(run: Run) -> dict[str, tuple[str, str]]:
    """link -> (OK|BROKEN, text), from status's output (the run's lines carry no prefix)."""
    return status_links(run.output, LINKS)


def status(primary: Deployment, label: str) -> tuple[Run, dict[str, tuple[str, str]]]:
    run = primary.tool("status", label)
    lines = chain(run)
    assert list(lines) == list(LINKS), f"status did not print the eight links in order: {list(lines)}"
    return run, lines


def assert_no_password(primary: Deployment, run: Run) -> None:
    """status never prints a secret value: the admin password (a stack output) is not in its output."""
    password = primary.outputs()["argocdAdminPassword"]
    leaked = password.value in run.output  # a bool, so a failure cannot show the value
    assert not leaked, "status printed the argocdAdminPassword output"


def test_status_of_the_converged_stack_is_all_ok(primary: Deployment) -> None:
    primary.require_converged()
    run, lines = status(primary, "h: status, healthy")
    assert run.code == 0, "status found a broken link on the converged stack (its output is above)"
    assert {link: state for link, (state, _) in lines.items()} == dict.fromkeys(LINKS, "OK")
    assert_no_password(primary, run)
    assert ", ".join(ARGOCD_SECRET_KEYS) in lines["argocd-secret"][1]
    # The healthy output, as a sample for the README (no secret in it: checked above). Only status's
    # own lines: the run's output also holds urllib3's InsecureRequestWarning (stderr), one per read,
    # because the suite's kubeconfig has `insecure-skip-tls-verify` (a loopback cluster).
    sample = [line for line in run.output.splitlines() if line.startswith("Stack ") or status_links(line, LINKS)]
    print("\n--- h: healthy `./cluster-secrets status e2e` output:")
    print("\n".join(sample), flush=True)


def test_status_with_eso_stopped_then_argocd_secret_deleted_then_eso_back(primary: Deployment) -> None:
    primary.require_converged()
    before = primary.get(ARGOCD_SECRET)
    try:
        primary.eso.hold()

        # ESO stopped, nothing deleted. A stopped controller leaves the Ready conditions of the store
        # and the ExternalSecret as it last wrote them. On a real cluster the `eso` link (its Deployment's
        # ready replicas) would show a controller that is down; here KWOK keeps ESO's Pod Running while
        # the controller runs on the host, so nothing in the cluster shows the outage and status still
        # says all is well. Only "last synced" ages: status calls it overdue after twice the
        # refreshInterval (2 h), beyond this test (tests/test_status.py covers that judgement).
        run, lines = status(primary, "h: status, ESO stopped, nothing deleted")
        assert run.code == 0, "status with ESO stopped (and nothing else wrong) was expected to be exit 0"
        assert {link: state for link, (state, _) in lines.items()} == dict.fromkeys(LINKS, "OK")

        # argocd-secret deleted by hand while ESO cannot recreate it.
        primary.cluster.api("DELETE", ARGOCD_SECRET)
        wait_until(lambda: primary.get(ARGOCD_SECRET) is None, 30, "argocd-secret to be gone")
        run, lines = status(primary, "h: status, ESO stopped, argocd-secret deleted")
        assert run.code == 1, "status must exit 1 when argocd-secret is missing"
        state, text = lines["argocd-secret"]
        assert state == "BROKEN"
        assert "Secret argocd/argocd-secret not found" in text, text
        # What to do: make ESO sync (annotate the ExternalSecret), and look at it.
        assert "Fix:" in text and "kubectl -n argocd annotate externalsecret argocd-secret" in text, text
        assert lines["password mtime"][0] == "BROKEN"  # nothing to compare with
        broken = sorted(link for link, (state, _) in lines.items() if state == "BROKEN")
        assert broken == ["argocd-secret", "password mtime"], broken
        assert_no_password(primary, run)
    finally:
        primary.eso.release()

    # ESO runs again (its kubelet restarts the controller) and recreates the Secret from the item.
    released = time.monotonic()
    after = wait_until(lambda: primary.get(ARGOCD_SECRET), RECOVERY_TIMEOUT, "ESO to recreate argocd-secret")
    FIGURES.note(f"h: argocd-secret recreated {time.monotonic() - released:.1f}s after ESO was let run again")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert secret_data(after) == secret_data(before)

    def healthy() -> Run | None:
        run = primary.tool("status", "h: status, ESO back")
        return run if run.code == 0 else None

    run = wait_until(healthy, 120, "status exit 0 after ESO recreated argocd-secret", interval=5)
    assert {link: state for link, (state, _) in chain(run).items()} == dict.fromkeys(LINKS, "OK")
