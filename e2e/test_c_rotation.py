"""Scenario c: bumping argocdAdminPasswordRotation puts a new hash in argocd-secret after one `up`."""

import time

import bcrypt

from e2e.conftest import Deployment
from e2e.controlplane import wait_until
from e2e.harness import FIGURES, Secret, secret_data

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"


def password_hash(primary: Deployment) -> Secret:
    return secret_data(primary.get(ARGOCD_SECRET))["admin.password"]


def checks(password: Secret, hashed: Secret) -> bool:
    return bcrypt.checkpw(password.value.encode(), hashed.value.encode())


def test_rotation_puts_a_new_hash_in_argocd_secret_after_one_up(primary: Deployment) -> None:
    primary.require_converged()
    old_password, old_hash = primary.outputs()["argocdAdminPassword"], password_hash(primary)
    primary.set_keys(argocdAdminPasswordRotation=1)
    run = primary.tool("up", "c: rotation")
    assert run.code == 0, "up failed (its output is above)"
    assert run.runs == 1
    new_password = primary.outputs()["argocdAdminPassword"]
    assert new_password != old_password
    # The force-sync annotation makes ESO sync at once; allow it the moments after `up` returns.
    finished = time.monotonic()
    new_hash = wait_until(lambda: (h := password_hash(primary)) != old_hash and h, 60, "a new admin.password")
    FIGURES.note(f"c: new admin.password in argocd-secret {time.monotonic() - finished:.1f}s after `up` returned")
    assert checks(new_password, new_hash), "the new password fails against the new hash"
    assert not checks(old_password, new_hash), "the old password still passes"
    item = primary.connect.item_fields("HomeLab", "argocd-secret")
    assert item["admin.password"] == new_hash
