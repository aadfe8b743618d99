"""Reading names, phones, documents and card numbers the same way every time."""

import pytest

from services.kit.errors import Invalid
from services.members.rules import identity


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("13800138000", "CN", "+8613800138000"),
    ("138 0013 8000", "CN", "+8613800138000"),
    ("+86 138-0013-8000", "US", "+8613800138000"),
    ("+1 415 555 2671", "CN", "+14155552671"),  # US numbers are fixed-line-or-mobile
    ("+852 9123 4567", "CN", "+85291234567"),
])
def test_parse_phone_gives_e164(raw, region, expected):
    assert identity.parse_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["12345", "abc", "+86 10 1234 5678", "1380013800", "+999 123"])
def test_parse_phone_refuses_invalid_or_landline_numbers(raw):
    with pytest.raises(Invalid) as raised:
        identity.parse_phone(raw, "CN")
    assert "phone" in raised.value.fields


def test_parse_phone_answers_as_the_validity_and_type_checks_both_asked():
    """``parse_phone`` asks ``number_type`` alone (UNKNOWN: not valid): the same answer, for numbers of every
    kind in the group's regions and beyond, as asking ``is_valid_number`` first."""
    import random

    import phonenumbers

    rng = random.Random(19)
    mobile = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    samples = [("".join(rng.choice("0123456789") for _ in range(rng.randint(5, 13))), region)
               for region in ("CN", "TW", "HK", "MO", "ES", "US", "GB", "IT") for _ in range(150)]
    samples += [("+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(7, 14))), "CN") for _ in range(400)]
    answers = set()
    for raw, region in samples:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            expected = "Not a valid phone number."
        elif phonenumbers.number_type(number) not in mobile:
            expected = "Not a mobile phone number."
        else:
            expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        try:
            answer = identity.parse_phone(raw, region)
        except Invalid as error:
            answer = error.fields["phone"][0]
        assert answer == expected, (raw, region)
        answers.add(answer if answer.startswith("Not") else "valid")
    assert answers == {"Not a valid phone number.", "Not a mobile phone number.", "valid"}  # each kind was tried


def test_resident_id_checksum():
    assert identity.valid_cn_resident_id("11010519491231002X")
    assert not identity.valid_cn_resident_id("110105194912310021")  # wrong check digit
    assert not identity.valid_cn_resident_id("11010519491331002X")  # month 13
    assert not identity.valid_cn_resident_id("1101051949123100")


def test_document_numbers_are_normalised_and_checked():
    assert identity.normalise_document("cn_resident_id", "110105 19491231 002x") == "11010519491231002X"
    assert identity.normalise_document("passport", " e1234-5678 ") == "E12345678"
    with pytest.raises(Invalid):
        identity.normalise_document("cn_resident_id", "110105194912310021")
    with pytest.raises(Invalid):
        identity.normalise_document("passport", "!!")


def test_card_numbers_carry_prefix_length_and_luhn_digit():
    numbers = {identity.new_card_number("88") for _ in range(200)}
    assert len(numbers) == 200
    for number in numbers:
        assert number.startswith("88") and len(number) == identity.CARD_LENGTH
        assert identity.luhn_valid(number)
        mistyped = number[:-1] + str((int(number[-1]) + 1) % 10)
        assert not identity.luhn_valid(mistyped)


def test_codes_draw_every_character_about_as_often():
    """Cards and referral codes draw a byte a character and drop the bytes past the alphabet's last whole
    multiple (31 letters do not divide 256): no character comes out markedly more often than another."""
    drawn = "".join(identity.new_referral_code() for _ in range(4000))  # 32,000 characters, ~1,032 each
    counts = [drawn.count(character) for character in identity.REFERRAL_ALPHABET]
    assert set(drawn) == set(identity.REFERRAL_ALPHABET)
    first, rest = sum(counts[:8]) / 8, sum(counts[8:]) / 23
    assert abs(first / rest - 1) < 0.05  # a modulo bias (256 % 31 = 8) would give the first 8 ~12.5% more
    digits = "".join(identity.new_card_number("88")[2:-1] for _ in range(3000))
    assert set(digits) == set("0123456789")


def test_luhn_check_digit_known_value():
    assert identity.luhn_check_digit("7992739871") == "3"


def test_referral_codes_avoid_ambiguous_characters():
    for _ in range(100):
        code = identity.new_referral_code()
        assert len(code) == identity.REFERRAL_LENGTH
        assert not set(code) & set("01ILO")
    assert identity.normalise_referral_code(" ab-cd 2345 ") == "ABCD2345"


@pytest.mark.parametrize(("name", "normal", "tokens"), [
    ("  Anna   SMITH ", "anna smith", {"anna", "smith"}),
    ("王小明", "王小明", {"王小明"}),
    ("Ｗａｎｇ　Ｗｅｉ", "wang wei", {"wang", "wei"}),  # full-width letters and space
])
def test_names_are_normalised_for_lookup(name, normal, tokens):
    assert identity.normalise_name(name) == normal
    assert identity.name_tokens(name) == tokens


@pytest.mark.parametrize(("value", "masked"), [
    ("+8613800138000", "+86138****8000"),
    ("+14155552671", "+1415***2671"),
    (None, None),
])
def test_phone_masking_keeps_country_and_last_digits(value, masked):
    assert identity.mask_phone(value) == masked


def test_document_and_email_masking():
    assert identity.mask_document("11010519491231002X") == "110***********002X"
    assert identity.mask_email("anna@example.com") == "a***@example.com"
