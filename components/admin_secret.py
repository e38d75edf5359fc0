"""The contents of argocd-secret. Pure: no Pulumi runtime.

FACTS.md (Argo CD): `admin.password` is a bcrypt hash ($2a$/$2b$/$2y$, cost 4-31; the reference
setup uses cost 10), `admin.passwordMtime` is RFC3339, and `server.secretkey` is any random string
(the reference setup: 32 random bytes as hex).
FACTS.md (bcrypt): salting anew on every run gives a new hash each time (a perpetual diff), so
the salt is derived from 16 random bytes kept in Pulumi state.
"""

import base64
import hashlib
from collections.abc import Mapping

import bcrypt

BCRYPT_COST = 10
BCRYPT_MAX_PASSWORD_BYTES = 72
BCRYPT_SALT_BYTES = 16

ADMIN_PASSWORD = "admin.password"
ADMIN_PASSWORD_MTIME = "admin.passwordMtime"
SERVER_SECRET_KEY = "server.secretkey"
# Exactly the keys we own in argocd-secret, in the order they appear in the 1Password item.
ARGOCD_SECRET_KEYS = (ADMIN_PASSWORD, ADMIN_PASSWORD_MTIME, SERVER_SECRET_KEY)

# The two items' entries in the argocdItemDigests output (components/outputs.py).
SECRET_ITEM, ADMIN_ITEM = "secretItem", "adminItem"
ADMIN_ITEM_PASSWORD = "password"

_STANDARD_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_BASE64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def bcrypt_salt(salt_bytes: bytes, cost: int = BCRYPT_COST) -> bytes:
    """A bcrypt salt string ($2b$, cost, 22 characters) from exactly 16 bytes.

    bcrypt's base64 packs bits as standard base64 does, with its own alphabet and no padding.
    """
    if len(salt_bytes) != BCRYPT_SALT_BYTES:
        raise ValueError(f"a bcrypt salt takes {BCRYPT_SALT_BYTES} bytes, got {len(salt_bytes)}")
    encoded = base64.b64encode(salt_bytes).rstrip(b"=").translate(bytes.maketrans(_STANDARD_BASE64, _BCRYPT_BASE64))
    return b"$2b$%02d$" % cost + encoded


def hash_admin_password(password: str, salt_hex: str) -> str:
    """The bcrypt hash (cost 10) of `password` with a salt from 16 stored random bytes (as hex).

    Same password and salt, same hash: a re-run with nothing changed changes nothing.
    """
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_PASSWORD_BYTES:
        # The length only: the password itself is never part of a message.
        raise ValueError(
            f"the Argo CD admin password is {len(encoded)} bytes; bcrypt accepts at most {BCRYPT_MAX_PASSWORD_BYTES}"
        )
    return bcrypt.hashpw(encoded, bcrypt_salt(bytes.fromhex(salt_hex))).decode("ascii")


def digest(value: str) -> str:
    """A value's SHA-256: two copies of a secret compared without keeping either."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def item_digests(admin_password: str, secret_values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The digest of each value the stack writes to its two items: argocd-secret's keys in the secret
    item, the clear password in the admin item."""
    return {
        SECRET_ITEM: {key: digest(secret_values[key]) for key in ARGOCD_SECRET_KEYS},
        ADMIN_ITEM: {ADMIN_ITEM_PASSWORD: digest(admin_password)},
    }
