"""Who a member is: reading names, phones and documents the same way every time. No I/O here.

Blind indexes are computed from these normal forms, so a lookup typed differently at another branch
("+86 138-0013-8000" vs "13800138000") still finds the same member.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date

import phonenumbers

from services.kit.errors import Invalid

REFERRAL_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud at a desk
REFERRAL_LENGTH = 8
CARD_LENGTH = 12  # prefix + random digits + a Luhn check digit

DOCUMENT_TYPES = ("cn_resident_id", "passport", "hk_macau_permit", "taiwan_permit", "other")
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def normalise_name(name: str) -> str:
    """Case-, width- and spacing-insensitive form of a name (NFKC, casefolded, single spaces)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def name_tokens(name: str) -> set[str]:
    """The words of a name, for finding "Smith" in "Anna Smith" (a CJK name is one word)."""
    return {token for token in normalise_name(name).split(" ") if token}


def parse_phone(raw: str, region: str) -> str:
    """A mobile number in E.164, reading local numbers in ``region``; ``Invalid`` otherwise."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    # ``number_type`` is UNKNOWN exactly when ``is_valid_number`` is false (both match the number against its
    # region's patterns, which is most of the cost): asked once, not twice
    kind = phonenumbers.number_type(number) if number is not None else phonenumbers.PhoneNumberType.UNKNOWN
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise Invalid("The mobile phone number is not valid.", {"phone": ["Not a valid phone number."]})
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise Invalid("A mobile phone number is needed (messages go to it).",
                      {"phone": ["Not a mobile phone number."]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_document(kind: str, number: str) -> str:
    """The canonical form of an ID document number; a PRC resident ID must pass its checksum."""
    cleaned = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", number)).upper()
    if not cleaned or len(cleaned) > 32 or not cleaned.isalnum():
        raise Invalid("The ID document number is not valid.",
                      {"id_document": {"number": ["Not a valid document number."]}})
    if kind == "cn_resident_id" and not valid_cn_resident_id(cleaned):
        raise Invalid("The resident ID number is not valid (check the digits).",
                      {"id_document": {"number": ["Not a valid resident ID number."]}})
    return cleaned


def valid_cn_resident_id(number: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == number[17]


def luhn_check_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == number[-1]


def _random_text(alphabet: str, length: int) -> str:
    """``length`` characters of ``alphabet``, each uniformly and unpredictably drawn (as ``secrets.choice``),
    from one read of the system's random source instead of one per character; bytes past the last whole
    multiple of the alphabet's size are dropped, so no character is likelier than another."""
    limit = 256 - 256 % len(alphabet)
    drawn: list[str] = []
    while len(drawn) < length:
        drawn += [alphabet[byte % len(alphabet)] for byte in secrets.token_bytes(2 * length) if byte < limit]
    return "".join(drawn[:length])


def new_card_number(prefix: str) -> str:
    """A card number: the group's prefix, random digits (not guessable from the previous card), a check digit."""
    body = prefix + _random_text("0123456789", CARD_LENGTH - 1 - len(prefix))
    return body + luhn_check_digit(body)


def normalise_card_number(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw)


def new_referral_code() -> str:
    return _random_text(REFERRAL_ALPHABET, REFERRAL_LENGTH)


def normalise_referral_code(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw).upper()


def mask_phone(e164: str | None) -> str | None:
    """``+8613800138000`` -> ``+86138****8000``: the country code and first digits stay readable."""
    if not e164:
        return e164
    country = _country_code_of(e164)
    national = e164[1 + len(country):]
    if len(national) <= 7:
        return "+" + country + "*" * (len(national) - 2) + national[-2:]
    return "+" + country + national[:3] + "*" * (len(national) - 7) + national[-4:]


def _country_code_of(e164: str) -> str:
    """The calling code that starts ``e164`` ("" if none is known). Calling codes are prefix-free and 1 to
    3 digits long, so the first known prefix is the one (a table lookup: parsing the number costs ~15 µs,
    paid on every member read)."""
    for length in (1, 2, 3):
        prefix = e164[1:1 + length]
        if prefix.isdigit() and int(prefix) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return prefix
    return ""


def mask_document(number: str | None) -> str | None:
    if not number:
        return number
    if len(number) <= 6:
        return "*" * (len(number) - 2) + number[-2:]
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return local[:1] + "***@" + domain


@dataclass(frozen=True)
class Match:
    """An existing member that an enrolment or change would duplicate, and on what.

    ``matched_on``: ``identifier`` (an external identifier, ``identify`` only), ``phone``, ``id_document``,
    ``name_and_birth_date``; ``same_name``: the member's name is the one given (normal forms equal)."""

    member_id: str
    card_number: str
    matched_on: tuple[str, ...]
    same_name: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"member_id": self.member_id, "card_number": self.card_number, "matched_on": list(self.matched_on)}


SURE, PROBABLE, NONE = "sure", "probable", "none"


@dataclass(frozen=True)
class Verdict:
    """Who an incoming patient is: ``sure`` (``member_id``), ``probable`` (``candidates`` for a person to
    choose from) or ``none`` (nobody: enrol)."""

    outcome: str
    member_id: str | None = None
    matched_on: tuple[str, ...] = ()
    candidates: tuple[Match, ...] = ()


def is_sure(match: Match) -> bool:
    """The same external identifier, the same ID document, or the same phone under the same name."""
    reasons = set(match.matched_on)
    return bool(reasons & {"identifier", "id_document"}) or ("phone" in reasons and match.same_name)


def judge(matches: list[Match] | tuple[Match, ...]) -> Verdict:
    """The identity rule over the members an incoming patient matched (one ``Match`` per member).

    - exactly one member surely matched (``is_sure``): that member, whatever else matched less surely;
    - two or more members surely matched (an identifier of one, the phone of another...): probable, all of
      them — a person must say which, nothing is merged or linked silently;
    - none surely, some matched (same name and birth date with another phone; the same phone under another
      name): probable;
    - none matched at all: none.
    """
    sure = [match for match in matches if is_sure(match)]
    if len(sure) == 1:
        return Verdict(SURE, sure[0].member_id, sure[0].matched_on)
    if matches:
        return Verdict(PROBABLE, candidates=tuple(sorted(matches, key=lambda m: (not is_sure(m), m.member_id))))
    return Verdict(NONE)


def normalise_identifier(system: str, value: str) -> tuple[str, str]:
    """An identifier's system and value as stored and looked up: surrounding spaces dropped (a value is
    compared exactly otherwise: systems differ on case), width-normalised (NFKC)."""
    system = unicodedata.normalize("NFKC", system).strip()
    value = unicodedata.normalize("NFKC", value).strip()
    if not system or not value:
        raise Invalid("An identifier needs a system and a value.", {"identifiers": ["Empty system or value."]})
    return system, value


def birthday_key(birth_date: date) -> str:
    """``MM-DD``: what birthday scans look up without decrypting dates of birth."""
    return birth_date.strftime("%m-%d")
