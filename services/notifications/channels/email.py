"""E-mail through SMTP (any relay: the group's mail server, SES, SendGrid, Exchange...).

Connections are kept open and reused (``STARTTLS`` and ``AUTH`` cost round trips per connection): an idle
one is checked with ``NOOP`` before it carries a message, and a connection that failed is never reused.
``STARTTLS`` (default) or implicit TLS (``security: ssl``), ``AUTH`` when a username is set, then a
multipart text + HTML message with ``Message-ID: <delivery id@domain>``. SMTP
replies are classified by code: 4xx (greylisting, mailbox busy, rate limits) are transient, 5xx for a
recipient (unknown user, rejected) permanent; refused credentials or sender addresses are our
configuration, kept transient so that messages go once an operator fixes it.

Settings (``NOTIFICATIONS.channels.email``): ``host``, ``port`` (587), ``security`` (starttls, ssl, none),
``username``, ``password`` (secret), ``from`` (address), ``from_name``, ``timeout`` (seconds).
"""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from services.notifications.channels.base import Message, PermanentFailure, Receipt, TransientFailure


class EmailChannel:
    name = "email"
    idempotent = False  # an SMTP relay does not dedupe by Message-ID

    def __init__(self, settings: dict[str, Any]) -> None:
        self.host = str(settings["host"])
        self.port = int(settings.get("port") or 587)
        self.security = str(settings.get("security") or "starttls").lower()
        if self.security not in ("starttls", "ssl", "none"):
            raise ValueError("email security must be starttls, ssl or none")
        self.username = settings.get("username") or None
        self.password = settings.get("password") or ""
        self.sender = str(settings["from"])
        self.sender_name = str(settings.get("from_name") or "")
        self.timeout = float(settings.get("timeout") or 20)
        self.domain = self.sender.rpartition("@")[2] or "careloop.local"
        self.max_idle = int(settings.get("max_idle_connections") or 10)
        self._idle: list[smtplib.SMTP] = []

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        return bool(settings.get("host") and settings.get("from"))

    def send(self, message: Message) -> Receipt:
        mail = self.compose(message)
        smtp = None
        try:
            smtp = self._borrow()
            smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as refused:
            self._discard(smtp)
            code, reply = next(iter(refused.recipients.values()))
            raise self._by_code(code, f"recipient refused: {_text(reply)}") from None
        except smtplib.SMTPAuthenticationError as error:
            self._discard(smtp)
            raise TransientFailure(f"the SMTP server refused our credentials ({error.smtp_code})") from None
        except smtplib.SMTPSenderRefused as error:
            self._discard(smtp)
            raise TransientFailure(f"the SMTP server refused our sender address ({error.smtp_code})") from None
        except smtplib.SMTPResponseException as error:
            self._discard(smtp)
            raise self._by_code(error.smtp_code, _text(error.smtp_error)) from None
        except (smtplib.SMTPException, OSError) as error:
            self._discard(smtp)
            raise TransientFailure(f"could not talk to the SMTP server ({type(error).__name__})") from None
        self._release(smtp)
        return Receipt(provider_id=str(mail["Message-ID"]))

    def _borrow(self) -> smtplib.SMTP:
        """An open, logged-in connection: an idle one that still answers NOOP, else a new one."""
        while self._idle:
            smtp = self._idle.pop()
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (smtplib.SMTPException, OSError):
                pass
            self._discard(smtp)
        smtp = self._connect()
        try:
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            self._discard(smtp)
            raise
        return smtp

    def _release(self, smtp: smtplib.SMTP) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(smtp)
        else:
            self._discard(smtp, polite=True)

    @staticmethod
    def _discard(smtp: smtplib.SMTP | None, polite: bool = False) -> None:
        if smtp is None:
            return
        try:
            smtp.quit() if polite else smtp.close()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def close(self) -> None:
        while self._idle:
            self._discard(self._idle.pop(), polite=True)

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = Address(self.sender_name, addr_spec=self.sender) if self.sender_name else self.sender
        mail["To"] = message.to
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = f"<{message.delivery_id}@{self.domain}>"
        mail.set_content(message.body or message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        mail["Content-Language"] = message.language  # after set_content, which clears Content-* headers
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    @staticmethod
    def _by_code(code: int, text: str) -> Exception:
        if 400 <= code < 500:
            return TransientFailure(f"SMTP {code}: {text}"[:300])
        return PermanentFailure(f"SMTP {code}: {text}"[:300])


def _text(reply: Any) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
