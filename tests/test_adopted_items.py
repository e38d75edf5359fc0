"""An adopted stack (adoptedArgocdItems) under mocks: the two admin items made outside the stack stay
the source of truth until the first rotation of each value, and their values stay secret."""

from typing import Any

import bcrypt
import pytest

from cluster_secrets.offline import FAKE_BYTES_HEX, FAKE_TIMESTAMP, is_secret
from cluster_secrets.stack_files import project_values
from components import outputs
from components.admin_secret import ADMIN_PASSWORD, ADMIN_PASSWORD_MTIME, ARGOCD_SECRET_KEYS, SERVER_SECRET_KEY
from components.config import load_config
from components.errors import ConfigError
from tests.conftest import CANARIES, Run, assert_no_plaintext, default_vaults, fakes, run_stack, stack_config

# Canaries: the adopted items' secret values, which must never appear outside a Pulumi secret.
PASSWORD = "canary-adopted-admin-password-3e9f"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10, prefix=b"2a")).decode()
SECRET_KEY = "canary-adopted-server-secretkey-77b1"
MTIME = "2026-12-01T10:00:00Z"
ADOPTED_SECRETS = (PASSWORD, PASSWORD_HASH, SECRET_KEY)
ADOPTED = {"adoptedArgocdItems": True}

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
TIME_STATIC = "time:index/static:Static"
ITEM = "onepassword:index/item:Item"
# What the fake RandomBytes of the 32-byte server secret key answers, as hex.
GENERATED_KEY = bytes.fromhex(FAKE_BYTES_HEX * 32)[:32].hex()


def adopted_vaults(
    fields: dict[str, str] | None = None, secret_category: str = "secure_note", admin_category: str = "login"
) -> dict[str, dict[str, dict[str, Any]]]:
    """The reference 1Password, with the two admin items made by hand in HomeLab (the fields in a section)."""
    values = (
        fields
        if fields is not None
        else {ADMIN_PASSWORD: PASSWORD_HASH, ADMIN_PASSWORD_MTIME: MTIME, SERVER_SECRET_KEY: SECRET_KEY}
    )
    vaults = default_vaults()
    vaults["HomeLab"] = {
        "argocd-secret": {
            "category": secret_category,
            "sections": [{"label": "", "fields": [{"label": k, "value": v} for k, v in values.items()]}],
        },
        "argo-admin": {"category": admin_category, "username": "admin", "password": PASSWORD},
    }
    return vaults


def run_adopted(config: dict[str, Any] | None = None, **vaults: Any) -> Run:
    return run_stack(config={**ADOPTED, **(config or {})}, vaults=adopted_vaults(**vaults))


def section(run: Run) -> dict[str, str]:
    """The argocd-secret item's section fields, by label."""
    [only] = run.named("argocd-secret-item").plain["sections"]
    return {field["label"]: field["value"] for field in only["fields"]}


@pytest.fixture(scope="module")
def adopted() -> Run:
    return run_adopted()


def test_an_adopted_stack_generates_no_password_salt_mtime_or_key(adopted):
    for token in (RANDOM_PASSWORD, RANDOM_BYTES, TIME_STATIC):
        assert adopted.by_type(token) == [], token
    assert len(adopted.by_type(ITEM)) == 2


def test_the_secret_item_carries_the_adopted_items_own_values(adopted):
    item = adopted.named("argocd-secret-item").plain
    assert (item["title"], item["category"]) == ("argocd-secret", "secure_note")
    fields = section(adopted)
    assert tuple(fields) == ARGOCD_SECRET_KEYS
    assert fields == {ADMIN_PASSWORD: PASSWORD_HASH, ADMIN_PASSWORD_MTIME: MTIME, SERVER_SECRET_KEY: SECRET_KEY}


def test_the_admin_item_carries_the_adopted_password(adopted):
    item = adopted.named("argocd-admin-item").plain
    assert (item["title"], item["category"], item["password"]) == ("argo-admin", "login", PASSWORD)


def test_the_adopted_items_keep_their_own_categories():
    run = run_adopted(secret_category="password", admin_category="database")
    assert run.named("argocd-secret-item").plain["category"] == "password"
    assert run.named("argocd-admin-item").plain["category"] == "database"


def test_the_admin_password_output_is_the_adopted_one_and_secret(adopted):
    assert adopted.outputs[outputs.ARGOCD_ADMIN_PASSWORD] == PASSWORD
    assert outputs.ARGOCD_ADMIN_PASSWORD in adopted.secret_outputs


def test_the_mtime_output_is_the_adopted_items(adopted):
    assert adopted.outputs[outputs.ARGOCD_ADMIN_PASSWORD_MTIME] == MTIME
    assert adopted.outputs[outputs.ARGOCD_SECRET_REVISION] == "password-0.secretkey-0"


def test_an_adopted_stack_reads_both_admin_items(adopted):
    reads = [args["title"] for token, args in adopted.monitor.invokes if token.endswith("getItem:getItem")]
    assert sorted(reads) == sorted(
        ["1password-credentials", "onepassword-connect-token", "argocd-secret", "argo-admin"]
    )


def test_every_adopted_value_is_secret_in_every_input_and_output(adopted):
    item = adopted.named("argocd-secret-item")
    [raw_section] = item.inputs["sections"]
    assert [field["label"] for field in raw_section["fields"] if is_secret(field["value"])] == list(ARGOCD_SECRET_KEYS)
    assert is_secret(adopted.named("argocd-admin-item").inputs["password"])
    assert_no_plaintext(adopted, (*CANARIES, *ADOPTED_SECRETS))


# Rotations replace the adopted values, one at a time.


def test_a_password_rotation_generates_a_new_password_hash_and_mtime_but_keeps_the_key():
    run = run_adopted({"argocdAdminPasswordRotation": 1})
    assert run.one(RANDOM_PASSWORD).plain["keepers"] == {"rotation": "1"}
    assert run.named("argocd-admin-password-salt").type == RANDOM_BYTES
    assert run.one(TIME_STATIC).name == "argocd-admin-password-mtime"
    assert [r.name for r in run.by_type(RANDOM_BYTES)] == ["argocd-admin-password-salt"]  # no new key
    password = run.outputs[outputs.ARGOCD_ADMIN_PASSWORD]
    assert password != PASSWORD and outputs.ARGOCD_ADMIN_PASSWORD in run.secret_outputs
    fields = section(run)
    assert fields[ADMIN_PASSWORD] != PASSWORD_HASH
    assert bcrypt.checkpw(password.encode(), fields[ADMIN_PASSWORD].encode())
    assert not bcrypt.checkpw(PASSWORD.encode(), fields[ADMIN_PASSWORD].encode())
    assert fields[ADMIN_PASSWORD_MTIME] == FAKE_TIMESTAMP == run.outputs[outputs.ARGOCD_ADMIN_PASSWORD_MTIME]
    assert fields[SERVER_SECRET_KEY] == SECRET_KEY
    assert run.named("argocd-admin-item").plain["password"] == password


def test_a_secret_key_rotation_generates_a_new_key_but_keeps_the_password():
    run = run_adopted({"argocdServerSecretKeyRotation": 1})
    key = run.one(RANDOM_BYTES)
    assert (key.name, key.plain) == ("argocd-server-secretkey", {"length": 32, "keepers": {"rotation": "1"}})
    assert run.by_type(RANDOM_PASSWORD) == [] and run.by_type(TIME_STATIC) == []
    fields = section(run)
    assert fields[SERVER_SECRET_KEY] == GENERATED_KEY != SECRET_KEY
    assert (fields[ADMIN_PASSWORD], fields[ADMIN_PASSWORD_MTIME]) == (PASSWORD_HASH, MTIME)
    assert run.outputs[outputs.ARGOCD_ADMIN_PASSWORD] == PASSWORD
    assert run.outputs[outputs.ARGOCD_SECRET_REVISION] == "password-0.secretkey-1"


# Items that cannot be adopted stop the program before anything is registered.


def refused(match: str, **vaults: Any) -> str:
    """The run must fail with a ConfigError matching `match`, with nothing registered and no value shown."""
    monitor = fakes(adopted_vaults(**vaults))
    with pytest.raises(ConfigError, match=match) as error:
        run_stack(config=ADOPTED, monitor=monitor)
    assert monitor.registrations == []
    message = str(error.value)
    for value in (*ADOPTED_SECRETS, PASSWORD_HASH[7:29], MTIME):
        assert value not in message, "the error shows a value"
    return message


@pytest.mark.parametrize("missing", ARGOCD_SECRET_KEYS)
def test_a_missing_field_names_the_item_and_the_field(missing):
    fields = {ADMIN_PASSWORD: PASSWORD_HASH, ADMIN_PASSWORD_MTIME: MTIME, SERVER_SECRET_KEY: SECRET_KEY}
    del fields[missing]
    message = refused(f"no {missing} in a section", fields=fields)
    assert "1Password item 'argocd-secret' in vault 'HomeLab' (adoptedArgocdItems)" in message


def test_an_empty_field_counts_as_missing():
    fields = {ADMIN_PASSWORD: PASSWORD_HASH, ADMIN_PASSWORD_MTIME: " ", SERVER_SECRET_KEY: SECRET_KEY}
    refused(f"no {ADMIN_PASSWORD_MTIME} in a section", fields=fields)


def test_an_admin_item_without_a_password_names_the_item():
    vaults = adopted_vaults()
    vaults["HomeLab"]["argo-admin"] = {"category": "login", "username": "admin", "password": ""}
    monitor = fakes(vaults)
    with pytest.raises(ConfigError, match="'argo-admin' in vault 'HomeLab' \\(adoptedArgocdItems\\): no password"):
        run_stack(config=ADOPTED, monitor=monitor)
    assert monitor.registrations == []


@pytest.mark.parametrize(
    ("title", "categories"),
    [("argocd-secret", {"secret_category": "document"}), ("argo-admin", {"admin_category": "api_credential"})],
)
def test_an_unsupported_category_names_the_item_and_the_category(title, categories):
    category = next(iter(categories.values()))
    message = refused(f"is a '{category}' item", **categories)
    assert f"1Password item '{title}' in vault 'HomeLab'" in message
    assert "login, password, database, secure_note" in message


def test_a_missing_adopted_item_names_it():
    vaults = adopted_vaults()
    del vaults["HomeLab"]["argo-admin"]
    with pytest.raises(ConfigError, match="could not read item 'argo-admin' in vault 'HomeLab'"):
        run_stack(config=ADOPTED, vaults=vaults)


def test_a_stack_that_does_not_adopt_never_reads_the_admin_items():
    run = run_stack(vaults=adopted_vaults())
    titles = {args["title"] for token, args in run.monitor.invokes if token.endswith("getItem:getItem")}
    assert titles == {"1password-credentials", "onepassword-connect-token"}
    assert section(run)[SERVER_SECRET_KEY] == GENERATED_KEY  # generated, not the item's


def test_sharing_the_primarys_admin_items_and_adopting_own_ones_is_refused():
    raw = project_values(
        stack_config(
            overrides={
                "primaryStack": "organization/cluster-secrets/homelab",
                "shareArgocdAdmin": True,
                "adoptedArgocdItems": True,
            }
        )
    )
    with pytest.raises(ConfigError, match="cluster-secrets:adoptedArgocdItems: a stack that shares"):
        load_config(raw, "homelab-2")
    raw["adoptedArgocdItems"] = "false"
    assert load_config(raw, "homelab-2").share_argocd_admin is True
