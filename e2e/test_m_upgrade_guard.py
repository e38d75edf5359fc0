"""Scenario m: the upgrade guard (cluster_secrets/upgrade_guard.py) on the primary's live cluster. A bump
that needs a step the program does not take stops `preview` and `up` with exit code 2, naming
esoChartVersion and the path, and nothing changes; put back, `preview` runs again.

It runs after scenario d, so the primary usually runs ESO 0.16.2 (or 2.9.0): then a pin back to 0.12.1
is stopped (its CRDs cannot hold the v1 that is stored now). Where d was skipped, ESO is still 0.12.1:
then v1alpha1 put back into the CRD's storedVersions (through the CRD's status subresource) stops the
bump to 0.16.2, and a jump to 2.9.0 is stopped with the path through 0.16.2.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from cluster_secrets.kube import ESO_GROUP
from components import outputs
from e2e.conftest import Deployment

CRD = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/externalsecrets.{ESO_GROUP}"
ESO_DEPLOYMENT = "/apis/apps/v1/namespaces/eso/deployments/external-secrets"
KEY = "cluster-secrets:esoChartVersion"
STOPPED = "the ESO upgrade needs a step this program does not take (nothing was changed)"


def running_eso(primary: Deployment) -> str:
    return str(primary.outputs()[outputs.CHART_VERSIONS]["externalSecrets"])


def snapshot(primary: Deployment) -> dict[str, Any]:
    """What a stopped run must leave as it was: the CRD (spec and status) and ESO's Deployment."""
    crd, deployment = primary.get(CRD), primary.get(ESO_DEPLOYMENT)
    return {
        "crd": (crd["metadata"]["resourceVersion"], crd["spec"]["versions"], crd["status"]["storedVersions"]),
        "eso": (deployment["metadata"]["generation"], deployment["spec"]["template"]["spec"]["containers"][0]["image"]),
    }


def assert_stopped(primary: Deployment, command: str, label: str, *expected: str) -> None:
    before = snapshot(primary)
    run = primary.tool(command, label)
    assert run.code == 2, f"{command} was not stopped by the upgrade guard (its output is above)"
    assert f"error: Stack {primary.stack}: {STOPPED}" in run.output
    assert f"  {KEY}: " in run.output
    for text in expected:
        assert text in run.output
    assert "Preview of" not in run.output and "run 1 from" not in run.output  # Pulumi never ran
    assert snapshot(primary) == before


def set_stored_versions(primary: Deployment, versions: list[str]) -> None:
    primary.cluster.api("PATCH", f"{CRD}/status", {"status": {"storedVersions": versions}})


@pytest.fixture
def eso_version_kept(primary: Deployment) -> Iterator[str]:
    """The primary's ESO version, pinned again afterwards whatever a test set."""
    primary.require_converged()
    version = running_eso(primary)
    try:
        yield version
    finally:
        primary.set_keys(esoChartVersion=version)


def test_a_pin_back_below_0_16_is_stopped(primary: Deployment, eso_version_kept: str) -> None:
    if not eso_version_kept.startswith(("0.16.", "2.")):
        pytest.skip(f"the primary runs ESO {eso_version_kept}: scenario d did not upgrade it")
    assert "v1" in primary.get(CRD)["status"]["storedVersions"]
    primary.set_keys(esoChartVersion="0.12.1")
    for command in ("preview", "up"):
        assert_stopped(
            primary,
            command,
            f"m: ESO {eso_version_kept} -> 0.12.1, {command}",
            "list v1 in status.storedVersions, which chart 0.12.1 does not know",
            "keep it at 0.16.0 or newer",
        )
    primary.set_keys(esoChartVersion=eso_version_kept)
    assert primary.tool("preview", "m: ESO pinned back").code == 0


def test_v1alpha1_in_stored_versions_and_a_jump_past_0_16_are_stopped(
    primary: Deployment, eso_version_kept: str
) -> None:
    if eso_version_kept != "0.12.1":
        pytest.skip(f"the primary runs ESO {eso_version_kept} (scenario d upgraded it); this needs 0.12.1")
    stored = list(primary.get(CRD)["status"]["storedVersions"])
    assert "v1alpha1" not in stored
    set_stored_versions(primary, ["v1alpha1", *stored])  # the 0.12.1 CRD still lists v1alpha1, so this is valid
    try:
        primary.set_keys(esoChartVersion="0.16.2")
        assert_stopped(
            primary,
            "preview",
            "m: v1alpha1 stored, ESO -> 0.16.2",
            "list v1alpha1 in status.storedVersions, which chart 0.16.2 drops",
            f"kubectl patch crd externalsecrets.{ESO_GROUP} --subresource=status --type=json",
        )
    finally:
        set_stored_versions(primary, stored)
    assert primary.get(CRD)["status"]["storedVersions"] == stored
    primary.set_keys(esoChartVersion="2.9.0")
    for command in ("preview", "up"):
        assert_stopped(
            primary,
            command,
            f"m: ESO 0.12.1 -> 2.9.0, {command}",
            "which chart 2.9.0 no longer serves",
            f"set {KEY} to 0.16.2, run `up`, then set it to 2.9.0",
        )
    primary.set_keys(esoChartVersion="0.12.1")
    assert primary.tool("preview", "m: ESO pinned back").code == 0
