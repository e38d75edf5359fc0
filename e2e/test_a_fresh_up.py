"""Scenario a: a fresh `./cluster-secrets up` converges in two runs, and argocd-secret is what 1Password holds."""

import bcrypt

from components.admin_secret import ARGOCD_SECRET_KEYS
from e2e import harness
from e2e.conftest import Deployment, SecretWatch
from e2e.harness import FIGURES, secret_data

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
EXTERNAL_SECRET = "/apis/external-secrets.io/v1beta1/namespaces/argocd/externalsecrets/argocd-secret"


def test_fresh_up_converges_in_two_runs_and_argocd_secret_comes_from_1password(primary: Deployment) -> None:
    watch = SecretWatch(primary.cluster)
    run = primary.tool("up", "a: fresh up")
    events = watch.stop()
    assert run.code == 0, "up failed (its output is above)"
    assert run.runs == 2
    outputs = primary.outputs()
    assert (outputs["argocdCreateSecret"], outputs["argocdSecretSynced"]) == (False, True)

    # Through both runs argocd-secret was created once and never deleted (the keep annotation held).
    assert events.count("ADDED") == 1 and "DELETED" not in events, events

    secret = primary.get(ARGOCD_SECRET)
    data = secret_data(secret)
    assert sorted(data) == sorted(ARGOCD_SECRET_KEYS)
    item = primary.connect.item_fields("HomeLab", "argocd-secret")
    assert data == {key: item[key] for key in ARGOCD_SECRET_KEYS}
    password = outputs["argocdAdminPassword"]
    matches = bcrypt.checkpw(password.value.encode(), data["admin.password"].value.encode())
    assert matches, "the argocdAdminPassword output does not match admin.password"
    assert primary.connect.item_fields("HomeLab", "argo-admin")["password"] == password

    # Which plugin served what: the onepassword items and time come from the bridged Terraform providers.
    for line in harness.served_by(primary.project, primary.stack, primary.env):
        print(line, flush=True)
        FIGURES.note(f"a: {line}")

    metadata = secret["metadata"]
    assert metadata["annotations"].get("helm.sh/resource-policy") == "keep"
    assert metadata["labels"].get("app.kubernetes.io/part-of") == "argocd"
    external_secret = primary.get(EXTERNAL_SECRET)
    (controller,) = [o for o in metadata.get("ownerReferences", []) if o.get("controller")]
    assert (controller["kind"], controller["uid"]) == ("ExternalSecret", external_secret["metadata"]["uid"])
    primary.converged = True
