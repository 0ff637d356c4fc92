"""SMS and MMS through Twilio: inbound messages, status callbacks, opt-out keywords, sending.

Account: external_id = the Twilio phone number (E.164); secrets account_sid,
auth_token; settings phone_number_sid. Twilio posts forms and signs the public
URL it called plus the POST parameters (X-Twilio-Signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.channels import base
from shared.channels.answers import ErrorShape, accepted_id
from shared.channels.config import ChannelSettings
from shared.channels.http import ProviderClient
from shared.errors import BadRequest, Unauthorized, Unprocessable

API_VERSION = "2010-04-01"
OPT_OUT = {"STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "UNSTOP"}
# Twilio's MessageStatus → ours; the in-between states say nothing new.
STATUSES: dict[str, str] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
# Twilio's error body: {"code", "message", "more_info", "status"}.
ERRORS = ErrorShape(provider="Twilio", message=("message",), code=("code",))
MEDIA_TYPES: dict[str, base.ContentType] = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "document": "document",
}


def signature(url: str, params: list[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each parameter
    name and value, sorted by name (and by value for repeated names)."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for name, value in params:
        grouped[name].add(value)
    payload = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as called and with/without its default port: Twilio signs either."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default is not None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=host)
    else:
        return [url]
    return [url, urlunsplit(other)]


class TwilioForm(BaseModel):
    model_config = ConfigDict(extra="allow")
    MessageSid: str = Field(min_length=2)
    AccountSid: str
    From: str
    To: str


class SmsSetup(BaseModel):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=16)
    phone_number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")


# Twilio carries at most 10 media per message; a larger NumMedia is not Twilio's.
MAX_MEDIA = 10


def _media(form: dict[str, str]) -> list[base.Attachment]:
    count = int(form.get("NumMedia") or 0)
    if not 0 <= count <= MAX_MEDIA:
        raise ValueError(f"NumMedia {count} is not 0 to {MAX_MEDIA}")
    attachments = []
    for n in range(count):
        mime = form.get(f"MediaContentType{n}")
        kind = (mime or "").split("/")[0]
        attachments.append(
            base.Attachment(
                type=kind if kind in MEDIA_TYPES else "document",
                url=form.get(f"MediaUrl{n}"),
                mime_type=mime,
            )
        )
    return attachments


class SmsSettings(ChannelSettings, env_prefix="CONNECTGAIN_TWILIO_"):
    api_url: str = "https://api.twilio.com"


class Sms(base.Channel):
    name: ClassVar[str] = "sms"
    Setup: ClassVar[type[BaseModel]] = SmsSetup
    body_types = ("application/x-www-form-urlencoded",)

    def verify(self, request: base.WebhookRequest, account: base.Account) -> None:  # no nonce
        given = request.headers.get("x-twilio-signature", "")
        token = account.secret("auth_token")
        params = request.form or []
        for url in url_variants(request.url):
            expected = signature(url, params, token)
            if given and hmac.compare_digest(given.encode(), expected.encode()):
                return
        raise Unauthorized("Missing or wrong X-Twilio-Signature", code="invalid_signature")

    def events(self, request: base.WebhookRequest, account: base.Account) -> list[base.RawEvent]:
        if request.form is None:
            raise BadRequest("Twilio posts form-encoded bodies")
        form = request.form_dict()
        try:
            TwilioForm.model_validate(form)
        except ValidationError as exc:
            raise BadRequest("Not a Twilio message webhook", details=exc.errors()) from exc
        status = form.get("MessageStatus")
        if status is None:
            return [
                base.RawEvent(
                    provider_event_id=f"message:{form['MessageSid']}",
                    event_type="message",
                    payload=form,
                )
            ]
        return [
            base.RawEvent(
                provider_event_id=f"status:{form['MessageSid']}:{status}",
                event_type="status",
                payload=form,
            )
        ]

    def parse(self, event: base.RawEvent, account: base.Account) -> base.Parsed:
        form: dict[str, Any] = event.payload
        if form.get("AccountSid") != account.secrets.get("account_sid"):
            return base.Ignored(reason="for another Twilio account")
        now = datetime.now(UTC)  # Twilio's webhooks carry no timestamp
        if event.event_type == "status":
            status = STATUSES.get(form["MessageStatus"])
            if status is None:
                return base.Ignored(reason=f"status {form['MessageStatus']} is not tracked")
            error = None
            if form.get("ErrorCode"):
                error = {"code": form["ErrorCode"], "message": form.get("ErrorMessage")}
            return base.StatusUpdate(
                provider_message_id=form["MessageSid"], status=status, occurred_at=now, error=error
            )
        if form.get("To") != account.external_id:
            return base.Ignored(reason="for another phone number")
        body = form.get("Body") or None
        attachments = _media(form)
        keyword = (body or "").strip().upper()
        content_type: base.ContentType = "text"
        if attachments and not body:
            content_type = MEDIA_TYPES.get(attachments[0].type, "document")
        return base.InboundMessage(
            provider_message_id=form["MessageSid"],
            sender=base.Sender(external_id=form["From"], phone=form["From"]),
            content_type=content_type,
            body=body,
            attachments=attachments,
            metadata={"segments": form.get("NumSegments"), "from_country": form.get("FromCountry")},
            occurred_at=now,
            opt_out=True if keyword in OPT_OUT else False if keyword in OPT_IN else None,
        )

    def _auth(self, account: base.Account) -> httpx.BasicAuth:
        return httpx.BasicAuth(account.secret("account_sid"), account.secret("auth_token"))

    async def send(
        self, client: ProviderClient, account: base.Account, message: base.OutboundMessage
    ) -> base.SendResult:
        sid = account.secret("account_sid")
        form = {"To": message.to, "From": account.external_id}
        if message.text:
            form["Body"] = message.text
        if message.media_url:
            form["MediaUrl"] = message.media_url
        if message.callback_url:
            form["StatusCallback"] = message.callback_url
        response = await client.call(
            "POST",
            f"{SmsSettings.current().api_url}/{API_VERSION}/Accounts/{sid}/Messages.json",
            errors=ERRORS,
            data=form,
            auth=self._auth(account),
            at_most_once=True,  # a 429 (error 20429) is never processed: retried
        )
        sid, body = accepted_id(response, "sid")  # the Message resource: {"sid": "SM…", …}
        return base.SendResult(provider_message_id=sid, response=body)

    async def connect(
        self, client: ProviderClient, *, setup: Any, webhook_url: str
    ) -> base.Connected:
        """Check the credentials, find the number in the account, point its SMS webhook here."""
        assert isinstance(setup, SmsSetup)
        auth = httpx.BasicAuth(setup.account_sid, setup.auth_token)
        resource = f"{SmsSettings.current().api_url}/{API_VERSION}/Accounts/{setup.account_sid}"
        listed = await client.request(
            "GET",
            f"{resource}/IncomingPhoneNumbers.json",
            params={"PhoneNumber": setup.phone_number},
            auth=auth,
        )
        if not listed.is_success:
            raise Unprocessable(f"Twilio refused the credentials: {ERRORS.refusal(listed).message}")
        numbers = listed.json().get("incoming_phone_numbers", [])
        if not numbers:
            raise Unprocessable(f"{setup.phone_number} is not a number of this Twilio account")
        number_sid = numbers[0]["sid"]
        await client.call(
            "POST",
            f"{resource}/IncomingPhoneNumbers/{number_sid}.json",
            errors=ERRORS,
            data={"SmsUrl": webhook_url, "SmsMethod": "POST"},
            auth=auth,
        )
        return base.Connected(
            external_id=setup.phone_number,
            settings={"phone_number_sid": number_sid},
            secrets={"account_sid": setup.account_sid, "auth_token": setup.auth_token},
        )
