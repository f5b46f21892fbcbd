"""Contact data at rest: Telegram chat ids and Signal numbers are Fernet-encrypted.

`security.contact_encryption_key` holds one or more Fernet keys separated by commas; the first
encrypts, all decrypt (MultiFernet), so an operator rotates by putting a new key in front and
running `python -m bot rotate-keys`. Lookups by address use keyed hashes computed with every key,
so they keep working during a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class ContactKeyMissing(Exception):
    """No encryption key is configured; linking Telegram or Signal is refused."""


class ContactCipher:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ContactKeyMissing(
                "security.contact_encryption_key is not set: Telegram and Signal links are disabled"
            )
        try:
            self._fernets = [Fernet(k.encode()) for k in parts]
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "security.contact_encryption_key must be Fernet keys (32 url-safe base64 bytes)"
            ) from exc
        self._multi = MultiFernet(self._fernets)
        self._hash_keys = [
            hashlib.sha256(b"rallypoint-contact-hash|" + base64.urlsafe_b64decode(k)).digest()
            for k in parts
        ]

    def encrypt(self, address: str) -> str:
        return self._multi.encrypt(address.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("contact data cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt with the primary key."""
        return self._multi.rotate(token.encode()).decode()

    def address_hash(self, address: str) -> str:
        """The keyed hash stored beside the ciphertext (primary key)."""
        return self.address_hashes(address)[0]

    def address_hashes(self, address: str) -> list[str]:
        """Hashes under every configured key, for lookups that must survive a rotation."""
        return [hmac.new(k, address.encode(), hashlib.sha256).hexdigest() for k in self._hash_keys]

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()


def mask_chat_id(chat_id: int | str) -> str:
    """Show at most the last two digits of a Telegram chat id (for logs and masked displays)."""
    text = str(chat_id)
    return "•••" + text[-2:] if len(text) > 2 else "•••"
