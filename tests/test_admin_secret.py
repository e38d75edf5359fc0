import bcrypt
import pytest

from components.admin_secret import BCRYPT_COST, bcrypt_salt, hash_admin_password

SALT_HEX = "00112233445566778899aabbccddeeff"


def test_salt_is_a_bcrypt_salt_of_cost_10():
    salt = bcrypt_salt(bytes.fromhex(SALT_HEX))
    assert salt.startswith(b"$2b$10$")
    assert len(salt) == len(b"$2b$10$") + 22
    # bcrypt itself accepts it and keeps it: the hash starts with the same 29 characters.
    assert bcrypt.hashpw(b"x", salt)[:29] == salt


def test_salt_needs_16_bytes():
    with pytest.raises(ValueError, match="16 bytes"):
        bcrypt_salt(b"short")


def test_hash_verifies_has_cost_10_and_is_stable():
    password = "correct-horse-battery-staple-42"
    first = hash_admin_password(password, SALT_HEX)
    assert bcrypt.checkpw(password.encode(), first.encode())
    assert not bcrypt.checkpw(b"wrong", first.encode())
    assert first.split("$")[2] == f"{BCRYPT_COST:02d}"
    assert hash_admin_password(password, SALT_HEX) == first


def test_hash_changes_with_the_salt():
    assert hash_admin_password("p" * 20, SALT_HEX) != hash_admin_password("p" * 20, "ff" * 16)


def test_72_bytes_pass_and_73_are_refused_without_the_password_in_the_message():
    assert bcrypt.checkpw(b"a" * 72, hash_admin_password("a" * 72, SALT_HEX).encode())
    secret = "S3cret!" * 10 + "xyz"  # 73 bytes
    with pytest.raises(ValueError, match="73 bytes; bcrypt accepts at most 72") as error:
        hash_admin_password(secret, SALT_HEX)
    assert secret not in str(error.value)


def test_multibyte_passwords_count_bytes_not_characters():
    with pytest.raises(ValueError, match="74 bytes"):
        hash_admin_password("é" * 37, SALT_HEX)
