"""What `paralm serve` accepts, and who may call it.

Why: a server answering on a network must refuse what it cannot serve (a 50 MB body, 10 minutes of
audio) before spending memory or model time on it, and must not answer strangers: binding any address
other than loopback requires a key (`--api-key-env NAME`, read from the environment, never a flag value,
never logged); requests without the matching `Authorization: Bearer` header then get 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass

from paralm.fault.exits import UserError

LOOPBACK_NAMES = ("localhost",)


class Refusal(Exception):
    """A request the server will not answer: HTTP status, OpenAI-style error code, one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = " ".join(message.split())  # one line, whatever the cause said

    def body(self) -> dict:
        kind = "authentication_error" if self.status == 401 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "code": self.code, "param": None}}


@dataclass(frozen=True)
class ServeLimits:
    """Args:
        max_request_bytes: largest request body (413 above it).
        max_audio_seconds: longest audio part (413 above it).
        max_new_tokens: longest answer; a request's max_tokens can only lower it.
        audio_parts: audio parts one request must carry (the model takes one clip per prompt).
    """

    max_request_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 60.0
    max_new_tokens: int = 64
    audio_parts: int = 1


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_key(host: str, api_key_env: str | None, environ: dict | None = None) -> str | None:
    """The key requests must present (None: no key, loopback only); refuses an open non-loopback bind."""
    env = os.environ if environ is None else environ
    if api_key_env is None:
        if not is_loopback(host):
            raise UserError(f"binding {host} (not loopback) needs a key: set one in an environment variable and "
                            "give its name with --api-key-env NAME")
        return None
    key = env.get(api_key_env, "")
    if not key.strip():
        raise UserError(f"--api-key-env {api_key_env}: that environment variable is empty or unset")
    return key


def check_auth(header: str | None, key: str | None) -> None:
    """401 unless `Authorization: Bearer <key>` matches (constant-time); nothing to check without a key."""
    if key is None:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Refusal(401, "missing_api_key", "this server needs an `Authorization: Bearer <key>` header")
    if not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise Refusal(401, "invalid_api_key", "the API key is not valid for this server")
