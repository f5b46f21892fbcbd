"""Signal delivery through signal-cli-rest-api (`POST /v2/send`), one recipient per request, and the
reading of what arrives (`/v1/receive/<number>`).

What the API answers (bbernhard/signal-cli-rest-api `src/api/api.go`, `SendV2`, and its issues):

- 201 `{"timestamp": "<ms>"}`; older or other builds answer a list (`[{"timestamp": ...}]`),
  a bare timestamp, or no body at all. Every 2xx means the message left, whatever the body.
- 429 `{"error": "...rate limiting...", "challenge_tokens": [...], "account": "<our number>"}`
  (json-rpc mode, since 0.82): retryable. A person has to solve a captcha for the challenge
  token, so it is logged at WARNING, without the number.
- 400 `{"error": "..."}` for everything else signal-cli reports: "Unregistered user" (the
  recipient has no Signal account: permanent), "User <number> is not registered" (our own account
  is not: permanent, a configuration problem), and rate limiting / network failures that older
  modes report as 400 (retryable).

Signal has no idempotent send: `supports_dedup` is False.

What `/v1/receive/<number>` hands over is one JSON object per message, `{"envelope": {...},
"account": "<our number>"}` — pushed over a WebSocket in json-rpc mode, or as a JSON array per GET in
normal and native mode (served as text/plain). Only a data message with a text and a visible sender
number (`sourceNumber`) can answer anything; receipts, typing and the rest are not texts.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.delivery.base import OutgoingMessage, SendResult
from services.models import Channel
from services.phone import mask_number, normalize_e164

log = logging.getLogger(__name__)

_PHONE_LIKE = re.compile(r"\+?[0-9][0-9 \-]{5,}[0-9]")
_MAX_REASON = 200
# 400 answers that describe a transient condition (normal and older json-rpc modes).
_TRANSIENT_400 = ("rate limit", "network failure", "[429]", "[413]")


def _mask_phone_like(text: str) -> str:
    return _PHONE_LIKE.sub(lambda m: mask_number(re.sub(r"[ \-]", "", m.group())), text)


def _reason(prefix: str, error: str) -> str:
    detail = _mask_phone_like(" ".join(error.split()))
    if len(detail) > _MAX_REASON:
        detail = detail[: _MAX_REASON - 1] + "…"
    return f"{prefix}: {detail}" if detail else prefix


def parse_send_timestamp(body: str) -> str | None:
    """Extract the message timestamp from a `/v2/send` answer of any known shape, else None."""
    try:
        data: Any = json.loads(body) if body.strip() else None
    except ValueError:
        return None
    if isinstance(data, list):
        data = data[0] if data else None
    if isinstance(data, dict):
        data = data.get("timestamp")
    if isinstance(data, bool):
        return None
    if isinstance(data, int) and data > 0:
        return str(data)
    if isinstance(data, str) and data.isascii() and data.isdigit():
        return data
    return None


def _parse_error(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {"error": body.strip()}
    return data if isinstance(data, dict) else {"error": str(data)}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough to leave to the dispatcher's backoff
    return seconds if 0 <= seconds < math.inf else None


def classify_send_answer(status: int, body: str, headers: Any, masked: str = "•••••") -> SendResult:
    """Classify a `/v2/send` answer; `masked` names the recipient in logs."""
    if 200 <= status < 300:
        timestamp = parse_send_timestamp(body)
        log.debug("Signal message %s sent to %s", timestamp, masked)
        return SendResult.sent(timestamp)
    error = _parse_error(body)
    message = str(error.get("error") or "")
    lowered = message.lower()
    if status == 429:
        tokens = error.get("challenge_tokens") or []
        log.warning(
            "Signal rate limit (429) sending to %s; solve a captcha for challenge token(s) %s "
            "via POST /v1/accounts/{number}/rate-limit-challenge",
            masked,
            ", ".join(str(t) for t in tokens) or "(none given)",
        )
        return SendResult.retryable("Signal rate limit (429)", retry_after=_retry_after(headers))
    if status >= 500 or status == 408:
        log.warning("Signal API answered %d sending to %s", status, masked)
        return SendResult.retryable(f"Signal API error {status}", retry_after=_retry_after(headers))
    if "unregistered user" in lowered:
        log.info("Signal recipient %s is not registered", masked)
        return SendResult.permanent("recipient is not registered on Signal")
    if "is not registered" in lowered:
        log.error("The bot's Signal account is not registered with the Signal API")
        return SendResult.permanent("the bot's Signal account is not registered")
    if status == 400 and any(marker in lowered for marker in _TRANSIENT_400):
        log.warning("Signal reported a transient failure sending to %s", masked)
        return SendResult.retryable(_reason("Signal transient failure", message))
    log.info("Signal API answered %d sending to %s", status, masked)
    return SendResult.permanent(_reason(f"Signal API error {status}", message))


@dataclass(frozen=True, slots=True)
class IncomingText:
    """A text someone sent the bot's number: who (E.164, as Signal gives it) and what."""

    number: str
    text: str


def incoming_text(item: Any) -> IncomingText | None:
    """The text and sender number of one received object, or None for anything that is not a plain text
    from a visible number (a receipt, typing, a sender who hides their number, a malformed object)."""
    envelope = item.get("envelope") if isinstance(item, dict) else None
    if not isinstance(envelope, dict) or not isinstance(data := envelope.get("dataMessage"), dict):
        return None
    number, text = envelope.get("sourceNumber"), data.get("message")
    if not isinstance(number, str) or not number or not isinstance(text, str):
        return None
    return IncomingText(number, text)


def parse_received(body: str) -> list[Any]:
    """The objects of one normal/native-mode answer (a JSON array); ValueError if it is not one."""
    data = json.loads(body) if body.strip() else []
    if not isinstance(data, list):
        raise ValueError("the receive answer is not a JSON array")
    return data


class SignalClient:
    """Speak signal-cli-rest-api's `/v2/send` for the bot's own Signal number."""

    def __init__(
        self, session: aiohttp.ClientSession, api_url: str, number: str, *, timeout: float = 15
    ) -> None:
        self._session = session
        self._url = api_url.rstrip("/") + "/v2/send"
        self._number = number
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send_text(self, recipient: str, text: str) -> SendResult:
        """Send `text` to the E.164 number `recipient`; classify the outcome, never raise for it."""
        try:
            recipient = normalize_e164(recipient)
        except ValueError:
            return SendResult.permanent("not a valid E.164 phone number")
        masked = mask_number(recipient)
        payload = {"message": text, "number": self._number, "recipients": [recipient]}
        try:
            async with self._session.post(self._url, json=payload, timeout=self._timeout) as response:
                status = response.status
                body = await response.text(errors="replace")
                headers = response.headers
        except TimeoutError:
            log.warning("Signal send to %s timed out", masked)
            return SendResult.retryable("Signal request timed out")
        except aiohttp.ClientError as exc:
            log.warning("Signal send to %s failed: %s", masked, type(exc).__name__)
            return SendResult.retryable(f"Signal API unreachable ({type(exc).__name__})")
        return classify_send_answer(status, body, headers, masked)


class SignalSender:
    """The Signal channel of the delivery protocol, delegating to a `SignalClient`."""

    def __init__(self, client: SignalClient) -> None:
        self._client = client

    @property
    def channel(self) -> Channel:
        return Channel.SIGNAL

    @property
    def supports_dedup(self) -> bool:
        return False

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send `message.text` to the number in `message.address`."""
        if message.on_wire is not None:
            await message.on_wire()
        return await self._client.send_text(message.address, message.text)
