"""Scenario j: what the real 1Password provider and Connect's sync bring, on the converged `e2e` stack.

- A rotation while ESO's Connect syncs 12 s behind: ESO's force-sync reads the old item and turns
  Ready at once; `up` returns only once argocd-secret holds the new hash (cluster_secrets/synced.py).
- The argocd-secret item deleted by hand in 1Password: terraform-provider-onepassword v2.2.1 cannot
  read, update or delete it; `preview` says so, `up` takes it out of the state and creates it again
  with the same contents, and argocd-secret is never deleted or changed (cluster_secrets/preflight.py).
- A new Connect token in the init vault, the old one revoked: `up` updates the token Secret in place
  (same uid), rolls Connect (the credentials digest on its pods), and the store is Ready again.
"""

import secrets

import bcrypt

from components.admin_secret import ARGOCD_SECRET_KEYS
from components.connect import CREDENTIALS_DIGEST
from e2e.conftest import Connect, Deployment, SecretWatch
from e2e.controlplane import wait_until
from e2e.harness import FIGURES, Secret, ready, secret_data

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
TOKEN_SECRET = "/api/v1/namespaces/eso/secrets/onepassword-connect-token"
CONNECT = "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect"
ESO_CLIENT = "eso-e2e"  # the Connect stand-in's name for the primary cluster's ESO


def test_a_rotation_under_connects_sync_delay_returns_once_the_cluster_holds_the_new_hash(
    primary: Deployment, connect: Connect
) -> None:
    primary.require_converged()
    standin = connect.standin
    standin.set_sync_delay(12, client=ESO_CLIENT)
    try:
        primary.set_keys(argocdAdminPasswordRotation=2)
        run = primary.tool("up", "j: rotation, ESO's Connect 12 s behind")
        held = secret_data(primary.get(ARGOCD_SECRET))  # at the moment `up` returned
    finally:
        standin.set_sync_delay(standin.sync_delay, client=ESO_CLIENT)
    assert run.code == 0, "up failed (its output is above)"
    outputs = primary.outputs()
    assert held["admin.passwordMtime"] == Secret(outputs["argocdAdminPasswordMtime"])
    assert bcrypt.checkpw(outputs["argocdAdminPassword"].value.encode(), held["admin.password"].value.encode())
    # ESO's first sync read the old item: the tool saw it and asked again until the new one came.
    waits = [line for line in run.output.splitlines() if "waiting:" in line and "admin.passwordMtime" in line]
    assert waits, "the tool never saw the stale Secret: the sync delay was not in play"
    assert "The cluster holds what was deployed" in run.output
    FIGURES.note(f"j: rotation with ESO's Connect 12 s behind: {len(waits)} look(s) at a stale argocd-secret")


def test_an_item_deleted_by_hand_is_made_again_and_argocd_secret_is_untouched(
    primary: Deployment, connect: Connect
) -> None:
    primary.require_converged()
    standin = connect.standin
    before_id = standin.item("HomeLab", "argocd-secret")["id"]
    before = connect.item_fields("HomeLab", "argocd-secret")
    secret = primary.get(ARGOCD_SECRET)
    uid, data = secret["metadata"]["uid"], secret_data(secret)
    watch = SecretWatch(primary.cluster)
    standin.delete_item("HomeLab", "argocd-secret")
    standin.synced()

    run = primary.tool("preview", "j: preview, an item deleted by hand")
    assert run.code == 0, "preview failed (its output is above)"
    assert "1Password items of this stack were deleted outside Pulumi: 'argocd-secret'" in run.output
    assert "`up` takes them out and creates them again" in run.output

    run = primary.tool("up", "j: up, an item deleted by hand")
    events = watch.stop()
    assert run.code == 0, "up failed (its output is above)"
    assert "this `up` creates them again with the same contents" in run.output
    assert standin.item("HomeLab", "argocd-secret")["id"] != before_id
    after = connect.item_fields("HomeLab", "argocd-secret")
    assert [after.get(key) for key in ARGOCD_SECRET_KEYS] == [before[key] for key in ARGOCD_SECRET_KEYS]
    secret = primary.get(ARGOCD_SECRET)
    assert (secret["metadata"]["uid"], secret_data(secret)) == (uid, data)
    assert "DELETED" not in events, events
    assert ready(primary.get(primary.eso_path("namespaces/argocd/externalsecrets/argocd-secret")))

    run = primary.tool("up", "j: up after the repair")
    assert run.code == 0 and "deleted outside Pulumi" not in run.output
    assert [route for route in run.requests if not route.startswith("GET ")] == []


def test_a_new_connect_token_rolls_connect_and_the_store_is_ready_again(primary: Deployment, connect: Connect) -> None:
    primary.require_converged()
    standin = connect.standin
    token_secret, deployment = primary.get(TOKEN_SECRET), primary.get(CONNECT)
    digest = deployment["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_DIGEST]
    old, new = connect.tokens[ESO_CLIENT], secrets.token_urlsafe(24)
    standin.tokens[new] = ESO_CLIENT
    standin.edit_item("InitHomeLab", "onepassword-connect-token", {"password": new})
    standin.synced()
    del standin.tokens[old]  # revoked: ESO's requests with it are refused from now on
    connect.tokens[ESO_CLIENT] = new
    store_path = primary.eso_path("clustersecretstores/one-secretstore")
    # The store sees the revoked token once it validates again.
    primary.cluster.api("PATCH", store_path, {"metadata": {"annotations": {"e2e/revalidate": "1"}}})
    wait_until(lambda: not ready(primary.get(store_path)), 60, "the store to refuse the revoked token")

    run = primary.tool("up", "j: up after a new Connect token")
    assert run.code == 0, "up failed (its output is above)"
    after = primary.get(TOKEN_SECRET)
    assert after["metadata"]["uid"] == token_secret["metadata"]["uid"], "the token Secret was replaced"
    assert secret_data(after)["token"] == Secret(new)
    rolled = primary.get(CONNECT)
    assert rolled["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_DIGEST] != digest
    assert rolled["metadata"]["generation"] > deployment["metadata"]["generation"]
    assert ready(primary.get(store_path)), "the store is not Ready after up"
    # ESO retries a failed store with backoff, so it may be Ready again before the tool looks (as in
    # one run of three here); when it is not, the tool says so and asks it to validate again.
    nudged = "ClusterSecretStore one-secretstore not Ready" in run.output
    print(
        "    the tool", "asked the store to validate again" if nudged else "found the store Ready (ESO retried first)"
    )
