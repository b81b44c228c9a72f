"""Password hashing (argon2id) with a rehash check, and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.core.errors import ValidationFailed

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)

MIN_LENGTH = 8
MAX_LENGTH = 256

#: A hash of a random password, verified against when the user does not exist, so that the time
#: taken does not tell whether a username exists.
DUMMY_HASH = _hasher.hash("cityhub-dummy-password-for-timing")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationFailed(
            f"密码长度须为 {MIN_LENGTH}–{MAX_LENGTH} 个字符",
            details={"field": "password"},
            code="weak_password",
        )
    if password.isdigit() or password.isalpha():
        raise ValidationFailed(
            "密码须同时包含字母和数字或符号", details={"field": "password"}, code="weak_password"
        )
