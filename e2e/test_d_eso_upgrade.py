"""Scenario d: ESO 0.12.1 -> 0.16.2 (-> 2.9.0 where its controller was built) on the same cluster updates
the ESO objects in place (the aliases across external-secrets.io/v1beta1 and v1), and argocd-secret is
never deleted. The path goes through 0.16.2 because the upgrade guard stops a jump past it
(cluster_secrets/upgrade_guard.py: only the 0.16 charts serve both v1beta1 and v1)."""

import re

import pytest

from e2e.conftest import Deployment, SecretWatch
from e2e.controlplane import wait_until
from e2e.harness import eso_upgrade_path, ready

ES = "/apis/external-secrets.io/{version}/namespaces/argocd/externalsecrets/argocd-secret"
STORE = "/apis/external-secrets.io/{version}/clustersecretstores/one-secretstore"
ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"


def test_eso_upgrade_keeps_the_external_secret_and_argocd_secret(primary: Deployment) -> None:
    primary.require_converged()
    path = eso_upgrade_path()
    if path is None:
        pytest.skip("no ESO 0.16.2 controller binary (the step every upgrade from 0.12.1 takes): run e2e/build-tools")
    es_uid = primary.get(ES.format(version="v1beta1"))["metadata"]["uid"]
    store_uid = primary.get(STORE.format(version="v1beta1"))["metadata"]["uid"]
    secret_uid = primary.get(ARGOCD_SECRET)["metadata"]["uid"]
    for target in path:
        watch = SecretWatch(primary.cluster)
        primary.set_keys(esoChartVersion=target)
        run = primary.tool("up", f"d: ESO -> {target}")
        events = watch.stop()
        assert run.code == 0, "up failed (its output is above)"
        assert "the ESO upgrade needs a step" not in run.output
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
        wait_until(lambda version=target: primary.eso.version == version, 120, f"ESO {target} to run")
        wait_until(
            lambda: ready(primary.get(ES.format(version="v1"))), 60, "the ExternalSecret Ready under the new ESO"
        )
