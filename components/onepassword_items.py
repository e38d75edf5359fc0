"""Reads from 1Password: the Connect credentials file and token from the init vault, and the two admin
items of an adopted stack (components/config.py, adoptedArgocdItems).

The reads are plain (synchronous) invokes, so bad data fails the program at preview, before any
resource changes, with a message that names the item and vault. Every value leaves this module as
a secret Output; error messages name fields, never their values.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_onepassword as onepassword

from components.admin_secret import ADMIN_PASSWORD, ADMIN_PASSWORD_MTIME, ARGOCD_SECRET_KEYS, SERVER_SECRET_KEY
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


def read_token(vault: str, vault_id: str, title: str, what: str = "Connect token") -> pulumi.Output[str]:
    """ESO's token (`what`: a Connect token, or a service account token), as a secret: the item's
    `credential` when it is an API Credential item, else its password (FACTS.md, 1Password provider:
    a token can be saved either way)."""
    item = read_item(vault, vault_id, title)
    token, field = (item.credential, "credential") if (item.credential or "").strip() else (item.password, "password")
    if not (token or "").strip():
        raise ConfigError(
            f"1Password item {title!r} in vault {vault!r}: no {what} (expected it in the item's password, "
            "or the credential of an API Credential item)"
        )
    pulumi.log.info(f"{what[0].upper()}{what[1:]}: the {field} of 1Password item {title!r} in vault {vault!r}")
    return pulumi.Output.secret(token)


# The item categories terraform-provider-onepassword v2.2.1 can keep (FACTS.md, the real 1Password provider):
# an item keeps its category, which 1Password cannot change, so an adopted item is declared with its own.
ITEM_CATEGORIES = ("login", "password", "database", "secure_note")


@dataclass(frozen=True)
class AdoptedAdmin:
    """argocd-secret's contents and the clear admin password as the adopted items hold them (secrets),
    and the items' own categories."""

    password: pulumi.Output[str]
    password_hash: pulumi.Output[str]
    password_mtime: str  # RFC3339: a timestamp, not a secret (status prints it)
    secret_key: pulumi.Output[str]
    secret_category: str
    admin_category: str


def section_fields(item: onepassword.GetItemResult) -> dict[str, str]:
    """The values of an item's fields in sections, by label (the data source does not return custom
    fields outside a section; terraform-provider-onepassword v2.2.1 onepassword_item_data_source.go)."""
    return {field.label: field.value for section in item.sections or [] for field in section.fields or []}


def adopted_category(item: onepassword.GetItemResult, title: str, vault: str) -> str:
    if item.category not in ITEM_CATEGORIES:
        raise ConfigError(
            f"1Password item {title!r} in vault {vault!r} (adoptedArgocdItems) is a {item.category!r} item; the "
            f"provider keeps only {', '.join(ITEM_CATEGORIES)}"
        )
    return item.category


def read_adopted_admin(vault: str, vault_id: str, secret_title: str, admin_title: str) -> AdoptedAdmin:
    """The values of the two items `adopt` took over; a ConfigError naming what is missing, never a value."""
    secret_item = read_item(vault, vault_id, secret_title)
    fields = section_fields(secret_item)
    missing = [key for key in ARGOCD_SECRET_KEYS if not (fields.get(key) or "").strip()]
    if missing:
        raise ConfigError(
            f"1Password item {secret_title!r} in vault {vault!r} (adoptedArgocdItems): no {', '.join(missing)} in a "
            "section of the item"
        )
    admin = read_item(vault, vault_id, admin_title)
    if not (admin.password or "").strip():
        raise ConfigError(f"1Password item {admin_title!r} in vault {vault!r} (adoptedArgocdItems): no password")
    return AdoptedAdmin(
        password=pulumi.Output.secret(admin.password),
        password_hash=pulumi.Output.secret(fields[ADMIN_PASSWORD]),
        password_mtime=fields[ADMIN_PASSWORD_MTIME],
        secret_key=pulumi.Output.secret(fields[SERVER_SECRET_KEY]),
        secret_category=adopted_category(secret_item, secret_title, vault),
        admin_category=adopted_category(admin, admin_title, vault),
    )
