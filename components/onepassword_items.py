"""Reads from 1Password's init vault: the Connect credentials file and the Connect token.

The reads are plain (synchronous) invokes, so bad data fails the program at preview, before any
resource changes, with a message that names the item and vault. Every value leaves this module as
a secret Output; error messages name fields, never their values.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_onepassword as onepassword

from components.errors import ConfigError

# The fields every Connect credentials file (1password-credentials.json) has.
CREDENTIALS_FIELDS = ("verifier", "encCredentials", "version", "deviceUuid", "uniqueKey")
CREDENTIALS_FILE_NAME = "1password-credentials.json"


def vault_uuid(vault: str) -> str:
    """The UUID of a vault named in config (items are addressed by vault UUID)."""
    try:
        return onepassword.get_vault(name=vault).uuid
    except Exception as error:
        raise ConfigError(f"1Password: could not read vault {vault!r}: {error}") from None


def read_item(vault: str, vault_id: str, title: str) -> onepassword.GetItemResult:
    """One item of a vault, or a ConfigError that says which item and vault were asked for."""
    try:
        return onepassword.get_item(vault=vault_id, title=title)
    except Exception as error:
        raise ConfigError(f"1Password: could not read item {title!r} in vault {vault!r}: {error}") from None


def credentials_from_files(files: Sequence[Any], where: str) -> bytes:
    """The credentials JSON attached to the item: the file named 1password-credentials.json, or
    the only file. Checked to be a Connect credentials file."""
    named = [f for f in files if f.name == CREDENTIALS_FILE_NAME]
    chosen = named or list(files)
    if len(chosen) != 1:
        raise ConfigError(f"{where}: expected one attached file ({CREDENTIALS_FILE_NAME}), found {len(files)} files")
    try:
        content = base64.b64decode(chosen[0].content_base64, validate=True)
    except (binascii.Error, TypeError):
        raise ConfigError(f"{where}: the attached file {chosen[0].name!r} could not be read") from None
    check_credentials(content, where)
    return content


def check_credentials(content: bytes, where: str) -> None:
    """Raise ConfigError unless `content` is a JSON object with every Connect credentials field."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{where}: the credentials file is not JSON (expected 1password-credentials.json)") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: the credentials file is not a JSON object (expected 1password-credentials.json)")
    missing = [field for field in CREDENTIALS_FIELDS if not document.get(field)]
    if missing:
        raise ConfigError(
            f"{where}: the credentials file lacks {', '.join(missing)} "
            f"(a Connect credentials file has {', '.join(CREDENTIALS_FIELDS)})"
        )


def read_connect_credentials(vault: str, vault_id: str, title: str) -> pulumi.Output[str]:
    """The Connect credentials JSON, as a secret."""
    item = read_item(vault, vault_id, title)
    content = credentials_from_files(item.files or [], f"1Password item {title!r} in vault {vault!r}")
    return pulumi.Output.secret(content.decode("utf-8"))


def read_connect_token(vault: str, vault_id: str, title: str) -> pulumi.Output[str]:
    """The Connect token, as a secret: the item's `credential` when it is an API Credential item,
    else its password (FACTS.md, 1Password provider: a token can be saved either way)."""
    item = read_item(vault, vault_id, title)
    token, field = (item.credential, "credential") if (item.credential or "").strip() else (item.password, "password")
    if not (token or "").strip():
        raise ConfigError(
            f"1Password item {title!r} in vault {vault!r}: no Connect token (expected it in the item's password, "
            "or the credential of an API Credential item)"
        )
    pulumi.log.info(f"Connect token: the {field} of 1Password item {title!r} in vault {vault!r}")
    return pulumi.Output.secret(token)
