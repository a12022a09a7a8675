"""Encryption at rest of organization and project secrets (cryptography's Fernet, MultiFernet).

settings.SECRETS_ENCRYPTION_KEYS lists the keys newest first: the first encrypts, every one
decrypts. `manage.py rotate_secrets_key` re-encrypts every value with the newest key, after which
the older keys may be dropped. The database holds only the Fernet tokens.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> MultiFernet:
    keys = settings.SECRETS_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        # Never the key itself in the message.
        raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEYS holds a key that is not a Fernet key") from None


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("a secret cannot be decrypted with any key of SECRETS_ENCRYPTION_KEYS") from None


def rotate(token: str) -> str:
    """The token re-encrypted with the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("a secret cannot be decrypted with any key of SECRETS_ENCRYPTION_KEYS") from None
