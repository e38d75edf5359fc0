"""Scenario e: a second cluster with the homelab-2 settings follows the `e2e` stack: its ExternalSecret
syncs from the primary's items, and no item is created (or written) twice in 1Password."""

from pathlib import Path

import pytest

from components.admin_secret import ARGOCD_SECRET_KEYS
from e2e.conftest import Connect, Deployment, deployment
from e2e.harness import secret_data, upgrade_eso_version

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"


def test_second_cluster_syncs_from_the_primary_items(
    primary: Deployment, workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]
) -> None:
    primary.require_converged()
    eso = upgrade_eso_version()
    if eso is None:
        pytest.skip("no ESO 2.9.0 or 0.16.2 controller binary for homelab-2: run e2e/build-tools")
    # homelab-2 pins ESO 2.9.0; where only 0.16.2 could be built, the e2e-2 stack pins that instead.
    pins = {} if eso == "2.9.0" else {"esoChartVersion": eso}
    items_before = {i["id"]: i["version"] for i in connect.standin.items("HomeLab")}
    with deployment(
        "e2e-2",
        1,
        "homelab-2",
        workdir,
        charts,
        connect,
        project,
        primaryStack="organization/cluster-secrets/e2e",
        **pins,
    ) as second:
        # `pulumi stack init` rewrites the stack file with `shareArgocdAdmin: "true"` as a string; this
        # run found the tool refusing its own file for that, now fixed (cluster_secrets/stack_files.py).
        run = second.tool("up", "e: second cluster up")
        assert run.code == 0, "up failed (its output is above)"
        assert run.runs == 2
        assert [route for route in run.requests if not route.startswith("GET ")] == []
        assert {i["id"]: i["version"] for i in connect.standin.items("HomeLab")} == items_before
        data = secret_data(second.get(ARGOCD_SECRET))
        item = connect.item_fields("HomeLab", "argocd-secret")
        assert data == {key: item[key] for key in ARGOCD_SECRET_KEYS}
        assert second.outputs()["argocdAdminPassword"] == primary.outputs()["argocdAdminPassword"]
