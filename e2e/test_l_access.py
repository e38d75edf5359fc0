"""Scenario l: how the cluster reaches 1Password (onepasswordAccess).

- external-connect on a fresh stack (`e2e-external`, cluster 5): the Connect stand-in outside the
  cluster, at its own address; no Connect release; argocd-secret synced from the item.
- The converged `e2e` switched connect -> external-connect -> connect: the store is updated in place
  each time (and Connect removed, then installed again); argocd-secret is never deleted or changed.
The service-account mode cannot run here (ESO 0.17+ and 1Password's SDK service): fast tests only.
"""

from pathlib import Path

from components.admin_secret import ARGOCD_SECRET_KEYS
from e2e.conftest import EXTERNAL_VAULT, Connect, Deployment, SecretWatch, deployment
from e2e.harness import CONNECT_HOST_NAME, CONNECT_STANDIN, eso_path, secret_data

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
CONNECT_DEPLOYMENT = "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect"
EXTERNAL = {"onepasswordAccess": "external-connect", "connectHost": CONNECT_STANDIN}


def store(deployed: Deployment, stack_outputs: dict) -> dict:
    """The stack's ClusterSecretStore, in the API version of the ESO its outputs name."""
    return deployed.get(eso_path(stack_outputs, "clustersecretstores/one-secretstore"))


def test_external_connect_on_a_fresh_stack_installs_no_connect_and_syncs_argocd_secret(
    workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]
) -> None:
    settings = {**EXTERNAL, "workingVault": EXTERNAL_VAULT, "storeVaults": {EXTERNAL_VAULT: 1}}
    with deployment("e2e-external", 5, "homelab", workdir, charts, connect, project, **settings) as external:
        run = external.tool("up", "l: fresh up, external Connect")
        assert run.code == 0, "up failed (its output is above)"
        assert run.runs == 2
        assert external.get("/api/v1/namespaces/onepassword") is None
        assert external.get(CONNECT_DEPLOYMENT) is None
        stack_outputs = external.outputs()
        assert store(external, stack_outputs)["spec"]["provider"]["onepassword"]["connectHost"] == CONNECT_STANDIN
        data = secret_data(external.get(ARGOCD_SECRET))
        item = connect.item_fields(EXTERNAL_VAULT, "argocd-secret")
        assert data == {key: item[key] for key in ARGOCD_SECRET_KEYS}
        assert stack_outputs["connectHost"] == CONNECT_STANDIN
        checked = external.tool("status", "l: status, external Connect")
        assert checked.code == 0, "a link is broken (the output is above)"
        assert f"not installed by this stack: the store reads the Connect at {CONNECT_STANDIN}" in checked.output


def test_switching_connect_to_external_and_back_keeps_argocd_secret(primary: Deployment) -> None:
    primary.require_converged()
    secret = primary.get(ARGOCD_SECRET)
    uid, data = secret["metadata"]["uid"], secret_data(secret)
    watch = SecretWatch(primary.cluster)
    try:
        primary.set_keys(**EXTERNAL)
        run = primary.tool("up", "l: connect -> external-connect")
        assert run.code == 0, "up failed (its output is above)"
        assert "delete kubernetes:helm.sh/v3:Release connect-release" in run.output
        assert primary.get(CONNECT_DEPLOYMENT) is None
        assert store(primary, primary.outputs())["spec"]["provider"]["onepassword"]["connectHost"] == CONNECT_STANDIN

        primary.set_keys(onepasswordAccess="connect", connectHost="")
        run = primary.tool("up", "l: external-connect -> connect")
        assert run.code == 0, "up failed (its output is above)"
        assert primary.get(CONNECT_DEPLOYMENT) is not None
        provider = store(primary, primary.outputs())["spec"]["provider"]["onepassword"]
        assert provider["connectHost"] == f"http://{CONNECT_HOST_NAME}:8080"
    finally:
        events = watch.stop()
    assert "DELETED" not in events, events
    secret = primary.get(ARGOCD_SECRET)
    assert (secret["metadata"]["uid"], secret_data(secret)) == (uid, data)
