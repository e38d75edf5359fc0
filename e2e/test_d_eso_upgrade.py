"""Scenario d: ESO 0.12.1 -> 2.9.0 on the same cluster updates the ESO objects in place (the aliases
across external-secrets.io/v1beta1 and v1), and argocd-secret is never deleted."""

import re

import pytest

from e2e.conftest import Deployment, SecretWatch
from e2e.controlplane import wait_until
from e2e.harness import ready, upgrade_eso_version

ES = "/apis/external-secrets.io/{version}/namespaces/argocd/externalsecrets/argocd-secret"
STORE = "/apis/external-secrets.io/{version}/clustersecretstores/one-secretstore"
ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"


def test_eso_upgrade_keeps_the_external_secret_and_argocd_secret(primary: Deployment) -> None:
    primary.require_converged()
    target = upgrade_eso_version()
    if target is None:
        pytest.skip("no ESO 2.9.0 or 0.16.2 controller binary: run e2e/build-tools")
    es_uid = primary.get(ES.format(version="v1beta1"))["metadata"]["uid"]
    store_uid = primary.get(STORE.format(version="v1beta1"))["metadata"]["uid"]
    secret_uid = primary.get(ARGOCD_SECRET)["metadata"]["uid"]
    watch = SecretWatch(primary.cluster)
    primary.set_keys(esoChartVersion=target)
    run = primary.tool("up", f"d: ESO 0.12.1 -> {target}")
    events = watch.stop()
    assert run.code == 0, "up failed (its output is above)"
    replaced = re.findall(
        r"(?:delete|replace|create-replacement|delete-replaced) kubernetes:external-secrets\.io\S*", run.output
    )
    assert replaced == []
    assert "DELETED" not in events, events
    # Read through v1, the version the new CRDs serve: the same objects, not new ones.
    assert primary.get(ES.format(version="v1"))["metadata"]["uid"] == es_uid
    assert primary.get(STORE.format(version="v1"))["metadata"]["uid"] == store_uid
    assert primary.get(ARGOCD_SECRET)["metadata"]["uid"] == secret_uid
    # ESO's kubelet now runs the new controller, which keeps the ExternalSecret Ready.
    wait_until(lambda: primary.eso.version == target, 120, f"ESO {target} to run")
    wait_until(lambda: ready(primary.get(ES.format(version="v1"))), 60, "the ExternalSecret Ready under the new ESO")
