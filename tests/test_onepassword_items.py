import json

import pytest

from cluster_secrets import offline
from cluster_secrets.offline import attached_file
from components.errors import ConfigError
from components.onepassword_items import CREDENTIALS_FIELDS, check_credentials
from tests.conftest import CANARY_TOKEN, CREDENTIALS, default_vaults, fakes, run_stack

WHERE = "1Password item '1password-credentials' in vault 'InitHomeLab'"


def run_with_init_items(**items):
    vaults = default_vaults()
    vaults["InitHomeLab"].update(items)
    return run_stack(vaults=vaults)


def expect_failure(match: str, **items) -> str:
    """Run with changed init items; the run must fail with `match` and without a secret in the message."""
    with pytest.raises(ConfigError, match=match) as error:
        run_with_init_items(**items)
    message = str(error.value)
    assert CANARY_TOKEN not in message and "canary-enc-data" not in message
    return message


@pytest.mark.parametrize("missing", CREDENTIALS_FIELDS)
def test_a_credentials_file_without_a_field_is_refused_by_name(missing):
    document = {k: v for k, v in CREDENTIALS.items() if k != missing}
    with pytest.raises(ConfigError, match=f"lacks {missing} ") as error:
        check_credentials(json.dumps(document).encode(), WHERE)
    assert WHERE in str(error.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"not json", "is not JSON"), (b"[1, 2]", "is not a JSON object"), (b"\xff\xfe", "is not JSON")],
)
def test_a_credentials_file_that_is_not_a_json_object_is_refused(content, match):
    with pytest.raises(ConfigError, match=match):
        check_credentials(content, WHERE)


def test_a_credentials_item_that_is_not_json_fails_the_run_and_names_the_item():
    message = expect_failure("is not JSON", **{"1password-credentials": {"files": [attached_file(b"{oops")]}})
    assert "'1password-credentials' in vault 'InitHomeLab'" in message


def test_a_credentials_item_without_a_file_fails_the_run():
    expect_failure("expected one attached file .* found 0 files", **{"1password-credentials": {"files": []}})


def test_the_named_file_wins_over_other_attachments():
    good = attached_file(json.dumps(CREDENTIALS).encode())
    other = attached_file(b"notes", name="README.txt")
    run = run_with_init_items(**{"1password-credentials": {"files": [other, good]}})
    assert run.one("kubernetes:core/v1:Secret", "connect-credentials")


def test_an_empty_token_fails_the_run():
    expect_failure(
        "no Connect token \\(expected it in the item.s password, or the credential of an API Credential item\\)",
        **{"onepassword-connect-token": {"password": " "}},
    )


def test_a_token_saved_as_an_api_credential_is_read_from_its_credential_and_the_log_says_so():
    run = run_with_init_items(**{"onepassword-connect-token": {"credential": CANARY_TOKEN, "password": ""}})
    token = run.one("kubernetes:core/v1:Secret", "external-secrets-connect-token")
    assert token.plain["stringData"] == {"token": CANARY_TOKEN}
    assert CANARY_TOKEN not in [text for _, text in offline.plaintext_strings(token.inputs)]  # a secret
    assert (
        "info",
        "Connect token: the credential of 1Password item 'onepassword-connect-token' in vault 'InitHomeLab'",
    ) in (run.monitor.log.messages)


@pytest.mark.parametrize("item", ["1password-credentials", "onepassword-connect-token"])
def test_a_missing_init_item_names_the_item_and_vault_and_registers_nothing(item):
    vaults = default_vaults()
    del vaults["InitHomeLab"][item]
    monitor = fakes(vaults)
    with pytest.raises(ConfigError) as error:
        run_stack(monitor=monitor)
    message = str(error.value)
    assert f"could not read item '{item}' in vault 'InitHomeLab'" in message
    assert "no item found" in message  # the provider's own error comes through
    assert monitor.registrations == [] and monitor.reads == []


def test_a_missing_vault_is_named():
    vaults = default_vaults()
    del vaults["HomeLab"]
    with pytest.raises(ConfigError, match="could not read vault 'HomeLab'"):
        run_stack(vaults=vaults)
