"""The members service's contract: what its RPCs accept and return (also the gateway's OpenAPI)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, post_dump, validate, validates, validates_schema

from services.kit.clock import isoformat
from services.kit.schemas import Schema, StrictInteger, UtcTime, list_of, page_of
from services.members.events import LANGUAGES, LIFECYCLE_STATUSES, SOURCES, STATUS_REASONS, TIER_REASONS
from services.members.rules import identity
from services.members.rules.programme import programme_document

GENDERS = ("female", "male", "other", "undisclosed")
STATUSES = (*LIFECYCLE_STATUSES, "merged")
DOCUMENT_TYPES = ("cn_resident_id", "passport", "hk_macau_permit", "taiwan_permit", "other")
EARLIEST_BIRTH = date(1900, 1, 1)


class ConsentsSchema(Schema):
    """Whether the member agreed to be contacted on each channel, and to marketing at all."""

    sms = fields.Boolean(load_default=False)
    email = fields.Boolean(load_default=False)
    wechat = fields.Boolean(load_default=False)
    line = fields.Boolean(load_default=False)
    marketing = fields.Boolean(load_default=False)


CHANNELS = tuple(ConsentsSchema._declared_fields)
"""The consents' channels (and marketing), in the schema's order."""
NO_CONSENTS = ConsentsSchema().load({})
"""The consents of an enrolment that gives none (every channel refused): a copy is each one's default (building
a ``ConsentsSchema`` for every enrolment cost as much as the rest of its checks)."""


class ConsentsChangeSchema(Schema):
    sms = fields.Boolean()
    email = fields.Boolean()
    wechat = fields.Boolean()
    line = fields.Boolean()
    marketing = fields.Boolean()


class IdDocumentSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))


class _PersonChecks(Schema):
    """The checks an enrolment and a change share: a name that is more than spaces, a plausible birth date."""

    @validates("birth_date")
    def _birth_date(self, value: date, **_: Any) -> None:
        if value > date.today():
            raise ValidationError("Date of birth cannot be in the future.")
        if value < EARLIEST_BIRTH:
            raise ValidationError("Date of birth is before 1900.")

    @validates("full_name")
    def _full_name(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("A name is needed.")


class EnrolmentSchema(_PersonChecks):
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(required=True, validate=validate.Length(min=3, max=32),
                          metadata={"description": "Mobile number; local numbers are read in the home branch's region."})
    email = fields.Email(load_default=None, allow_none=True)
    gender = fields.String(load_default="undisclosed", validate=validate.OneOf(GENDERS))
    birth_date = fields.Date(required=True)
    preferred_language = fields.String(load_default=None, validate=validate.OneOf(LANGUAGES))
    consents = fields.Nested(ConsentsSchema, load_default=lambda: dict(NO_CONSENTS))
    id_document = fields.Nested(IdDocumentSchema, load_default=None, allow_none=True)
    home_branch = fields.String(required=True, validate=validate.Length(min=1, max=16))
    referral_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=16))
    wechat_openid = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    line_user_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    source = fields.String(load_default="desk", validate=validate.OneOf(SOURCES))


_PLAIN_TEXT = {"full_name": (1, 100), "phone": (3, 32), "home_branch": (1, 16)}
_PLAIN_OPTIONAL_TEXT = {"referral_code": 16, "wechat_openid": 64, "line_user_id": 64}
_PLAIN_KEYS = frozenset((*_PLAIN_TEXT, *_PLAIN_OPTIONAL_TEXT, "birth_date", "gender", "preferred_language", "email",
                         "id_document", "source"))
_EMAIL = validate.Email()


_PLAIN_FIELDS = frozenset((*_PLAIN_KEYS, "consents"))
"""The fields ``plain_enrolment`` knows; should ``EnrolmentSchema`` have others, it answers None (the schema loads
every row) until it learns them (``tests/unit/test_plain_enrolment.py`` then fails, as it does when a rule
changes)."""


def plain_enrolment(data: Any) -> dict[str, Any] | None:
    """What ``EnrolmentSchema().load(data)`` gives, for the plain enrolments an import sends (strings within their
    rules, no consents), by the same rules written out once; None for anything else, which the schema then loads
    (and explains). An import's rows go through here: marshmallow's load around these few checks cost as much as
    the checks themselves (~25 us a row, both phases of an import). ``tests/unit/test_plain_enrolment.py`` holds
    the two equal over the sample files and every boundary of each rule; None is always a safe answer."""
    if type(data) is not dict or not _PLAIN_KEYS.issuperset(data) or not _PLAIN_FIELDS_ARE_THE_SCHEMAS:
        return None
    loaded: dict[str, Any] = {}
    for name, (shortest, longest) in _PLAIN_TEXT.items():
        value = data.get(name)
        if type(value) is not str or not shortest <= len(value) <= longest or "\x00" in value:
            return None
        loaded[name] = value
    if not loaded["full_name"].strip():
        return None
    for name, longest in _PLAIN_OPTIONAL_TEXT.items():
        value = data.get(name)
        if value is not None and (type(value) is not str or len(value) > longest or "\x00" in value):
            return None
        loaded[name] = value
    birth = data["birth_date"] if "birth_date" in data else None
    if type(birth) is not str:
        return None
    try:
        birth = date.fromisoformat(birth)  # marshmallow's ``fields.Date`` reads ISO dates with this function
    except ValueError:
        return None
    if birth > date.today() or birth < EARLIEST_BIRTH:
        return None
    loaded["birth_date"] = birth
    for name, choices, default in (("gender", GENDERS, "undisclosed"), ("source", SOURCES, "desk"),
                                   ("preferred_language", LANGUAGES, None)):
        value = data.get(name, default)
        if (value is not None or default is not None) and (type(value) is not str or value not in choices):
            return None  # only a field whose default is None may be given as None
        loaded[name] = value
    email = data.get("email")
    if email is not None:
        if type(email) is not str or "\x00" in email:
            return None
        try:
            _EMAIL(email)
        except ValidationError:
            return None
    loaded["email"] = email
    document = data.get("id_document")
    if document is not None:
        if (type(document) is not dict or document.keys() != {"type", "number"}
                or type(document["type"]) is not str or document["type"] not in DOCUMENT_TYPES
                or type(document["number"]) is not str or not 1 <= len(document["number"]) <= 40
                or "\x00" in document["number"]):
            return None
        document = {"type": document["type"], "number": document["number"]}
    loaded["id_document"] = document
    loaded["consents"] = dict(NO_CONSENTS)
    return loaded


_PLAIN_FIELDS_ARE_THE_SCHEMAS = _PLAIN_FIELDS == frozenset(EnrolmentSchema._declared_fields)


class MemberChangesSchema(_PersonChecks):
    """A partial update: only the fields given change."""

    full_name = fields.String(validate=validate.Length(min=1, max=100))
    phone = fields.String(validate=validate.Length(min=3, max=32))
    email = fields.Email(allow_none=True)
    gender = fields.String(validate=validate.OneOf(GENDERS))
    birth_date = fields.Date()
    preferred_language = fields.String(validate=validate.OneOf(LANGUAGES))
    consents = fields.Nested(ConsentsChangeSchema)
    id_document = fields.Nested(IdDocumentSchema, allow_none=True)
    home_branch = fields.String(validate=validate.Length(min=1, max=16))
    wechat_openid = fields.String(allow_none=True, validate=validate.Length(max=64))
    line_user_id = fields.String(allow_none=True, validate=validate.Length(max=64))


class FindMembersSchema(Schema):
    """Find by exactly one of phone, card, id_number or q (name); optionally within a branch."""

    phone = fields.String(validate=validate.Length(min=3, max=32))
    card = fields.String(validate=validate.Length(min=4, max=24))
    id_number = fields.String(validate=validate.Length(min=1, max=40))
    q = fields.String(validate=validate.Length(min=1, max=100))
    branch = fields.String(validate=validate.Length(min=1, max=16))
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class IdDocumentOutSchema(Schema):
    type = fields.String()
    number = fields.String(metadata={"description": "Masked unless the caller's role may see it."})


class StoredDate(fields.Date):
    """A date kept as ISO text (an encrypted column holds text): dumped as it is kept."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value if value is None or isinstance(value, str) else super()._serialize(value, attr, obj, **kwargs)


class Out(Schema):
    """An output schema some of whose fields are computed from the object dumped (or given to the schema's
    constructor): ``computed()`` maps such a field's attribute to a function of the object."""

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        return {}

    @functools.cached_property
    def _computers(self) -> dict[str, Callable[[Any], Any]]:
        """``computed()`` once per schema, not once per field of each object dumped (an export dumps thousands)."""
        return self.computed()

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        compute = self._computers.get(attr)
        return compute(obj) if compute is not None else super().get_attribute(obj, attr, default)


class _MemberOut(Out):
    """Dumps a ``Member`` row: consents are read off its ``consent_<channel>`` columns, the ID document off
    its two columns; every other field is the column of the same name (or ``attribute=``)."""

    SPREAD: dict[str, tuple[str, ...]] = {
        "consents": tuple(f"consent_{channel}" for channel in CHANNELS),
        "id_document": ("document_type", "document_number"),
    }
    """The fields kept in several columns."""

    @classmethod
    def columns(cls) -> list[str]:
        """The ``Member`` columns a dump reads (what a read for this schema must select)."""
        names = [field.attribute or name for name, field in cls._declared_fields.items()
                 if name not in cls.opts.exclude]
        return [column for name in names for column in cls.SPREAD.get(name, (name,))]

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "consents": lambda obj: {channel: getattr(obj, f"consent_{channel}") for channel in CHANNELS},
            "id_document": lambda obj: ({"type": obj.document_type, "number": obj.document_number}
                                        if obj.document_number else None),
        }


class _MaskedMember(_MemberOut):
    """A member's phone and email, and the ID number, masked unless ``reveal_phone`` / ``reveal_document`` (the
    caller's role may see them: ``access.reveals``)."""

    def __init__(self, *, reveal_phone: bool = False, reveal_document: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reveal_phone, self.reveal_document = reveal_phone, reveal_document

    @post_dump
    def _mask(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if not self.reveal_phone:
            data["phone"], data["email"] = identity.mask_phone(data["phone"]), identity.mask_email(data["email"])
        if not self.reveal_document and data["id_document"]:
            data["id_document"]["number"] = identity.mask_document(data["id_document"]["number"])
        return data


class MemberSchema(_MaskedMember):
    """A member; phone and email, and the ID number, masked unless ``reveal_phone`` / ``reveal_document``
    (the caller's role may see them: ``access.py``)."""

    id = fields.String()
    card_number = fields.String()
    referral_code = fields.String()
    referred_by = fields.String(allow_none=True, attribute="referred_by_id")
    full_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "E.164; masked unless the role may see it."})
    email = fields.String(allow_none=True)
    gender = fields.String()
    birth_date = StoredDate(allow_none=True)
    preferred_language = fields.String()
    consents = fields.Nested(ConsentsSchema)
    id_document = fields.Nested(IdDocumentOutSchema, allow_none=True)
    home_branch = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    tier = fields.String()
    source = fields.String()
    enrolled_at = UtcTime()
    updated_at = UtcTime()
    merged_into = fields.String(allow_none=True, attribute="merged_into_id",
                                metadata={"description": "The member this one was merged into."})
    version = fields.Integer(metadata={"description": "1 at enrolment, +1 at each change of the member's details "
                                                     "(FHIR meta.versionId; If-Match)."})


class MemberExportSchema(MemberSchema):
    """A member as the warehouse's export gives it (``export_members``, ``export_members_by_id``): the fields of
    the export's CSV (``gateway/routes/exports.py``) and nothing else, named, ordered and masked as in
    ``MemberSchema``. Only these columns are read and decrypted (``columns()``): an export reads every member."""

    class Meta:
        exclude = ("referral_code", "referred_by", "consents", "version")


def export_rows(members: Iterable[Any], *, reveal_phone: bool = False,
                reveal_document: bool = False) -> list[dict[str, Any]]:
    """``MemberExportSchema(many=True, reveal_phone=..., reveal_document=...).dump(members)``, written out: an
    export dumps every member, and marshmallow's machinery (16 fields, each through four calls) was most of the
    export's cost. The schema stays the contract; ``tests/unit/test_exports.py`` holds the two equal."""
    phone_of = (lambda phone: phone) if reveal_phone else identity.mask_phone
    email_of = (lambda email: email) if reveal_phone else identity.mask_email
    number_of = (lambda number: number) if reveal_document else identity.mask_document
    return [{
        "id": str(member.id), "card_number": member.card_number, "full_name": member.full_name,
        "phone": phone_of(member.phone), "email": email_of(member.email), "gender": member.gender,
        "birth_date": member.birth_date, "preferred_language": member.preferred_language,
        "id_document": ({"type": member.document_type, "number": number_of(member.document_number)}
                        if member.document_number else None),
        "home_branch": member.home_branch, "status": member.status, "tier": member.tier, "source": member.source,
        "enrolled_at": isoformat(member.enrolled_at), "updated_at": isoformat(member.updated_at),
        "merged_into": None if member.merged_into_id is None else str(member.merged_into_id),
    } for member in members]


MemberPageSchema = page_of(MemberSchema)


class ContactSchema(_MemberOut):
    """What notifications needs to reach a member (service-to-service only)."""

    member_id = fields.String(attribute="id")
    full_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    wechat_openid = fields.String(allow_none=True)
    line_user_id = fields.String(allow_none=True)
    preferred_language = fields.String()
    consents = fields.Nested(ConsentsSchema)
    home_branch = fields.String()
    status = fields.String()
    tier = fields.String()
    birth_mmdd = fields.String(allow_none=True)


class BirthdaySchema(Schema):
    """A member with a birthday on the day asked (for greetings)."""

    member_id = fields.String(attribute="id")
    preferred_language = fields.String()
    home_branch = fields.String()
    tier = fields.String()


BirthdayPageSchema = page_of(BirthdaySchema)


# --- the tier programme (a document: the config file, a stored version, the API) ----------------------

class ThresholdsSchema(Schema):
    """Any one path qualifies; leave a path out when it does not apply to the tier."""

    spend_minor = StrictInteger(allow_none=True, metadata={"description": "Qualifying spend in 12 months, minor units."})
    single_top_up_minor = StrictInteger(allow_none=True, metadata={"description": "One single top-up, minor units."})
    points_12m = StrictInteger(allow_none=True, metadata={"description": "Points earned in 12 months."})
    visits_12m = StrictInteger(allow_none=True, metadata={"description": "Completed visits in 12 months."})


class TierBenefitsSchema(Schema):
    """What a tier adds to the tier below (discounts: the better rate wins; quotas add up)."""

    discounts_bp = fields.Dict(keys=fields.String(), values=StrictInteger(), load_default=dict,
                               metadata={"description": "Category -> basis points off (500 = 5 %)."})
    quotas = fields.Dict(keys=fields.String(), values=StrictInteger(), load_default=dict,
                         metadata={"description": "Benefit -> uses per benefit year."})
    birthday_month_discount_bp = StrictInteger(allow_none=True)
    booking_horizon_days = StrictInteger(allow_none=True)
    priority_booking = fields.Boolean(allow_none=True)
    dedicated_advisor = fields.Boolean(allow_none=True)
    event_invitations = fields.Boolean(allow_none=True)


class TierSpecSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=24))
    names = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.Length(min=1, max=40)),
                        required=True, metadata={"description": "Language -> display name."})
    thresholds = fields.Nested(ThresholdsSchema, load_default=dict)
    benefits = fields.Nested(TierBenefitsSchema, load_default=dict)


class ReviewRulesSchema(Schema):
    basis = fields.String(validate=validate.OneOf(("anniversary", "tier_anniversary")))
    notice_days = StrictInteger()
    max_steps_down = StrictInteger()


class SegmentRulesSchema(Schema):
    a_top_share_bp = StrictInteger()
    a_min_visits_12m = StrictInteger()
    b_next_share_bp = StrictInteger()
    b_min_visits_12m = StrictInteger()
    churn_factor_pct = StrictInteger()
    default_interval_days = StrictInteger()


class ProgrammeSchema(Schema):
    """The tier programme: the ladder (lowest first), review and segment rules. See config/programme.yml."""

    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    categories = fields.List(fields.String(), validate=validate.Length(min=1, max=30))
    tier_visit_kinds = fields.List(fields.String(), validate=validate.Length(min=1, max=5))
    benefit_year = fields.String(validate=validate.OneOf(("anniversary", "calendar")))
    review = fields.Nested(ReviewRulesSchema)
    segments = fields.Nested(SegmentRulesSchema)
    tiers = fields.List(fields.Nested(TierSpecSchema), required=True, validate=validate.Length(min=1, max=12))


class ProgrammeChangeSchema(Schema):
    """A new version of the programme (group admins)."""

    programme = fields.Nested(ProgrammeSchema, required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    expected_version = StrictInteger(load_default=None, allow_none=True,
                                     metadata={"description": "Refuse (409) if the version in force is another."})


class ProgrammeVersionSchema(Schema):
    version = fields.Integer()
    note = fields.String(allow_none=True)
    created_at = UtcTime()
    created_by = fields.String(allow_none=True)


class ProgrammeInForceSchema(Out):
    version = fields.Integer(metadata={"description": "0: the group's file or the shipped defaults."})
    source = fields.String(validate=validate.OneOf(("database", "file", "defaults")))
    programme = fields.Nested(ProgrammeSchema)
    history = fields.List(fields.Nested(ProgrammeVersionSchema),
                          metadata={"description": "The latest stored versions, newest first (reads only)."})

    def __init__(self, *, history: list[Any] | None = None, **kwargs: Any) -> None:
        """``history``: the ``ProgrammeVersion`` rows to list (leave the field out with ``exclude``)."""
        super().__init__(**kwargs)
        self._history = history

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        return {"programme": lambda obj: programme_document(obj.programme), "history": lambda _: self._history}


class TierMoveSchema(Schema):
    from_tier = fields.String()
    to_tier = fields.String()
    direction = fields.String(validate=validate.OneOf(("up", "down")))
    members = fields.Integer()


class ProgrammePreviewSchema(Out):
    """What a proposed programme would do to the active members' tiers (``members.preview_programme``)."""

    version = fields.Integer(metadata={"description": "The version in force the proposal is compared with."})
    as_of = fields.Date(metadata={"description": "The last local day of the 12 months judged (today)."})
    members = fields.Integer(metadata={"description": "Active members judged (frozen and closed ones keep their tier)."})
    up = fields.Integer(metadata={"description": "Members the proposal qualifies above their tier: they move up at "
                                                 "their next visit, points or top-up."})
    down = fields.Integer(metadata={"description": "Members who hold their tier today but not under the proposal: "
                                                   "they move down at their yearly review, after its notice."})
    unchanged = fields.Integer()
    already_short = fields.Integer(metadata={"description": "Members short of their tier under the rules in force "
                                                            "already (due down at their review either way)."})
    moves = fields.List(fields.Nested(TierMoveSchema), metadata={"description": "By tier held and tier reached."})

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        def of_preview(name: str) -> Callable[[Any], Any]:
            return lambda obj: getattr(obj["preview"], name)

        return {name: of_preview(name) for name in ("as_of", "members", "up", "down", "unchanged", "already_short",
                                                    "moves")}


# --- tiers, benefits, quotas, prices -------------------------------------------------------------------

class TierActivitySchema(Schema):
    spend_minor = fields.Integer()
    largest_top_up_minor = fields.Integer()
    points = fields.Integer()
    visits = fields.Integer()


class TierStatusSchema(Schema):
    """A member's tier, why, and what the next one needs."""

    member_id = fields.String()
    status = fields.String()
    tier = fields.String()
    tier_names = fields.Dict(keys=fields.String(), values=fields.String())
    tier_since = UtcTime(allow_none=True)
    next_review_on = fields.Date(allow_none=True)
    pending = fields.Dict(allow_none=True, metadata={"description": "{tier, effective_on} after a review notice."})
    window = fields.Dict(metadata={"description": "{from, to}: the 12 months counted (local days)."})
    currency = fields.String()
    activity = fields.Nested(TierActivitySchema)
    qualifies_for = fields.Dict(metadata={"description": "{tier, paths}: what the 12 months earn today."})
    next = fields.Dict(allow_none=True, metadata={"description": "{tier, needs: {path: amount still missing}}."})
    lifetime = fields.Dict()


class TierChangeSchema(Schema):
    id = fields.Integer()
    from_tier = fields.String()
    to_tier = fields.String()
    direction = fields.String(validate=validate.OneOf(("up", "down")))
    reason = fields.String(validate=validate.OneOf(TIER_REASONS))
    source_ref = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    actor = fields.String()
    effective_at = UtcTime()


TierHistoryPageSchema = page_of(TierChangeSchema, "TierHistoryPageSchema")


class ManualTierSchema(Schema):
    """Set a member's tier by hand (group admins), or by a points purchase (the points service)."""

    tier = fields.String(required=True, validate=validate.Length(min=1, max=24))
    reason = fields.String(load_default="manual", validate=validate.OneOf(("manual", "points_purchase")))
    note = fields.String(required=True, validate=validate.Length(min=1, max=500))


class QuotaSchema(Schema):
    benefit = fields.String()
    allowed = fields.Integer()
    used = fields.Integer()
    remaining = fields.Integer()
    benefit_year = fields.Integer(metadata={"description": "The calendar year in which the benefit year starts."})


class BenefitsSchema(Schema):
    member_id = fields.String()
    tier = fields.String()
    status = fields.String()
    discounts = fields.Dict(keys=fields.String(), values=fields.Integer())
    birthday_month_discount_bp = fields.Integer()
    booking_horizon_days = fields.Integer()
    priority_booking = fields.Boolean()
    dedicated_advisor = fields.Boolean()
    event_invitations = fields.Boolean()
    quotas = fields.List(fields.Nested(QuotaSchema))
    benefit_year_starts_on = fields.Date()
    benefit_year_ends_on = fields.Date()


class QuotaUseRequestSchema(Schema):
    visit_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "The visit the benefit is used for: using twice is one use."})
    branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16))


class QuotaUndoRequestSchema(Schema):
    visit_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class QuotaUseSchema(Schema):
    """A quota use (``quotas.Standing``: the use, and the member's count for its benefit year)."""

    member_id = fields.String(attribute="use.member_id")
    benefit = fields.String(attribute="use.benefit")
    visit_id = fields.String(attribute="use.visit_id")
    benefit_year = fields.Integer(attribute="use.benefit_year",
                                  metadata={"description": "The calendar year in which the benefit year starts."})
    allowed = fields.Integer()
    used = fields.Integer()
    remaining = fields.Integer()
    state = fields.String(validate=validate.OneOf(("used", "undone")))
    used_at = UtcTime(attribute="use.used_at")
    undone_at = UtcTime(allow_none=True, attribute="use.undone_at")


class BillItemSchema(Schema):
    category = fields.String(required=True, validate=validate.Length(min=1, max=24))
    code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    amount_minor = StrictInteger(required=True, validate=validate.Range(min=0, max=10**12))


class PriceRequestSchema(Schema):
    items = fields.List(fields.Nested(BillItemSchema), required=True, validate=validate.Length(min=1, max=500))
    on = fields.Date(load_default=None, allow_none=True,
                     metadata={"description": "The bill's local day (birthday month); default today."})


class PricedLineSchema(BillItemSchema):
    discount_bp = fields.Integer()
    discount_minor = fields.Integer()
    net_minor = fields.Integer()
    basis = fields.String(allow_none=True, validate=validate.OneOf(("tier", "birthday_month")))


class PriceSchema(Schema):
    member_id = fields.String()
    tier = fields.String()
    currency = fields.String()
    lines = fields.List(fields.Nested(PricedLineSchema))
    amount_minor = fields.Integer()
    discount_minor = fields.Integer()
    net_minor = fields.Integer()
    rounding = fields.String(metadata={"description": "How a line's discount is rounded."})


# --- segments ------------------------------------------------------------------------------------------

class SegmentQuerySchema(Schema):
    branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16))
    churn_risk = fields.Boolean(load_default=None, allow_none=True)
    limit = StrictInteger(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(load_default=None, allow_none=True)


class SegmentMemberSchema(Out):
    """A member's grading (``MemberSegment``)."""


    member_id = fields.String()
    home_branch = fields.String()
    segment = fields.String()
    rfm = fields.Dict(keys=fields.String(), values=fields.Integer())
    churn_risk = fields.Boolean()
    last_visit_on = fields.Date(allow_none=True)
    usual_interval_days = fields.Integer(allow_none=True)
    changed_on = fields.Date(metadata={"description": "The night this member's grading last changed."})

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        return {"rfm": lambda obj: {"r": obj.rfm_r, "f": obj.rfm_f, "m": obj.rfm_m}}


SegmentPageSchema = page_of(SegmentMemberSchema, "SegmentPageSchema")


# --- merge and lifecycle -------------------------------------------------------------------------------

class MergeRequestSchema(Schema):
    merged_id = fields.String(required=True, metadata={"description": "The duplicate: its history moves to this member."})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class MemberStatusChangeSchema(Schema):
    """Why a membership is frozen, reactivated or closed: a reason code (it goes in the event) and a note
    (kept in the audit only)."""

    reason = fields.String(required=True, validate=validate.OneOf(STATUS_REASONS))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class MergeReversalSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class MergeSchema(Out):
    """A merge (``MemberMerge``): what it moved counted from its record; ``survivor_tier`` is given (null in
    a member's list of merges)."""

    merge_id = fields.String(attribute="id")
    survivor_id = fields.String()
    merged_id = fields.String()
    reason = fields.String()
    merged_at = UtcTime()
    merged_by = fields.String()
    moved = fields.Dict(keys=fields.String(), values=fields.Integer())
    survivor_tier = fields.String()
    reversed_at = UtcTime(allow_none=True)
    reversed_by = fields.String(allow_none=True)

    def __init__(self, *, survivor_tier: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._survivor_tier = survivor_tier

    def computed(self) -> dict[str, Callable[[Any], Any]]:
        return {"survivor_tier": lambda _: self._survivor_tier, "moved": _moved}


def _moved(merge: Any) -> dict[str, int]:
    """How many rows of each kind a merge moved, counted from its record."""
    record = json.loads(merge.record)
    return {**{name: len(ids) for name, ids in record["activity"].items()},
            "quota_uses": len(record["quota_uses"]), "referrals": len(record["referrals"])}


class StatusChangeSchema(Schema):
    """One change of a membership's status (``MemberStatusChange``)."""

    from_status = fields.String()
    to_status = fields.String()
    reason = fields.String()
    actor = fields.String()
    changed_at = UtcTime()


# --- identifiers and identity (issue 18) -----------------------------------------------------------------


class IdentifierSchema(Schema):
    """An identifier another system gives a member: a HIS's medical record number under that HIS's system
    URI; the card number under the group's card system (``urn:careloop:<group>:card`` unless configured)."""

    system = fields.String(required=True, validate=validate.Length(min=3, max=200),
                           metadata={"description": "The issuing system's URI, e.g. urn:oid:2.16.840.1.113883.2.4.6.3 "
                                                    "or https://his.example.org/mrn."})
    value = fields.String(required=True, validate=validate.Length(min=1, max=100))


class IdentifiersChangeSchema(Schema):
    identifiers = fields.List(fields.Nested(IdentifierSchema), required=True, validate=validate.Length(min=1, max=10))


class IdentifierListSchema(Schema):
    items = fields.List(fields.Nested(IdentifierSchema), required=True)


class PatientSchema(_PersonChecks):
    """A patient as another system sends it (HIS webhook, FHIR Patient, HL7 PID, an import row), for
    ``members.identify``: who it is, linked or enrolled by the identity rule."""

    full_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    birth_date = fields.Date(required=True)
    gender = fields.String(load_default="undisclosed", validate=validate.OneOf(GENDERS))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=3, max=32),
                          metadata={"description": "The mobile (as in an enrolment): the same as first of phones."})
    phones = fields.List(fields.String(validate=validate.Length(min=3, max=32)), load_default=list,
                         validate=validate.Length(max=5),
                         metadata={"description": "Phone numbers as sent, the member's mobile first; local numbers "
                                                  "are read in the home branch's region; numbers that are not valid "
                                                  "mobiles are ignored for matching. Enrolment takes the first mobile."})
    email = fields.Email(load_default=None, allow_none=True)
    id_document = fields.Nested(IdDocumentSchema, load_default=None, allow_none=True)
    identifiers = fields.List(fields.Nested(IdentifierSchema), load_default=list, validate=validate.Length(max=10))
    home_branch = fields.String(required=True, validate=validate.Length(min=1, max=16),
                                metadata={"description": "The branch the patient came through (enrolled there)."})
    preferred_language = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES))
    consents = fields.Nested(ConsentsSchema, load_default=lambda: dict(NO_CONSENTS))
    source = fields.String(load_default="his", validate=validate.OneOf(SOURCES),
                           metadata={"description": "The enrolment's source if the patient is enrolled."})
    referral_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=16))
    wechat_openid = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    line_user_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


IDENTITY_OUTCOMES = ("matched", "enrolled", "probable")


class CandidateSchema(Schema):
    member_id = fields.String()
    card_number = fields.String()
    matched_on = fields.List(fields.String(), metadata={
        "description": "identifier, phone, id_document, name_and_birth_date."})


class IdentityAnswerSchema(Schema):
    """What ``identify`` did: ``matched`` (a sure match: the patient's identifiers were added to ``member``),
    ``enrolled`` (nobody matched: ``member`` is new) or ``probable`` (someone may be this patient: nothing
    changed, ``candidates`` are for a person to choose from)."""

    outcome = fields.String(required=True, validate=validate.OneOf(IDENTITY_OUTCOMES))
    member = fields.Nested(MemberSchema, allow_none=True)
    matched_on = fields.List(fields.String(), metadata={"description": "Why the match is sure (``matched``)."})
    candidates = fields.List(fields.Nested(CandidateSchema))
    identifiers_added = fields.List(fields.Nested(IdentifierSchema))

    def __init__(self, *, reveal_phone: bool = False, reveal_document: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields["member"].nested = MemberSchema(reveal_phone=reveal_phone, reveal_document=reveal_document)
# --- family accounts -----------------------------------------------------------------------------------

FAMILY_RELATIONS = ("adult", "minor")  # besides the contact person, who opens the family


class FamilyCreateSchema(Schema):
    """A family opened by its contact person (the guardian of its minors) at a branch."""

    contact_member_id = fields.UUID(required=True)
    branch = fields.String(required=True, validate=validate.Length(min=1, max=16))


class FamilyLinkSchema(Schema):
    member_id = fields.UUID(required=True)
    relation = fields.String(required=True, validate=validate.OneOf(FAMILY_RELATIONS))


class FamilyUnlinkSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class FamilyMemberSchema(Schema):
    member_id = fields.String()
    relation = fields.String(metadata={"description": "contact, adult or minor"})
    linked_at = UtcTime()


class FamilySchema(Schema):
    """A family account (``families.view``)."""

    id = fields.String()
    contact_member_id = fields.String(metadata={"description": "The contact person: minors' guardian."})
    home_branch = fields.String()
    members = fields.List(fields.Nested(FamilyMemberSchema))
    created_at = UtcTime()
    updated_at = UtcTime()
    ended_at = UtcTime(allow_none=True)


class FamilyChangeSchema(Schema):
    """One line of a family's audit: created, linked, unlinked."""

    member_id = fields.String()
    action = fields.String()
    relation = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    actor = fields.String()
    changed_at = UtcTime()


class FamilyHistorySchema(Schema):
    items = fields.List(fields.Nested(FamilyChangeSchema))


class PatientViewSchema(MemberSchema):
    """A member with its identifiers (the card number under the group's card system first, then other
    systems'): what the FHIR facade answers as a Patient, in one call."""

    identifiers = fields.List(fields.Nested(IdentifierSchema))
class ImportRowSchema(Schema):
    """One row of an import: its idempotency key (the job and the row), the enrolment as read and the card
    number the member had in the system the file comes from (kept as the member's card when free)."""

    key = fields.String(required=True, validate=validate.Length(min=1, max=128))
    member = fields.Dict(required=True)
    card_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))


class ImportBatchSchema(Schema):
    rows = fields.List(fields.Nested(ImportRowSchema), required=True, validate=validate.Length(min=1, max=2000))


class ImportRowOutcomeSchema(Schema):
    """What became of one row: ``valid`` (checked, not enrolled), ``enrolled``, ``present`` (an existing
    member matches it: ``matches``; ``probable`` when not surely), ``invalid`` (``errors`` per field);
    ``identity``: short digests of its identifiers, equal for two rows of one file that are the same person."""

    key = fields.String()
    status = fields.String(validate=validate.OneOf(("valid", "enrolled", "present", "invalid")))
    member_id = fields.String()
    card_number = fields.String()
    message = fields.String()
    errors = fields.Dict()
    matches = fields.List(fields.Nested(CandidateSchema))
    identity = fields.List(fields.String())
    replayed = fields.Boolean(metadata={"description": "Enrolled by an earlier call with the same key."})
    probable = fields.Boolean(metadata={"description": "present: the identity rule is not sure it is the same "
                                                      "person (a person should review it)."})


ImportOutcomesSchema = list_of(ImportRowOutcomeSchema)



class LocateRowSchema(Schema):
    """Who a row of an import (balances, visits) names: its card number, an identifier, or a phone (read in
    ``branch``'s region), the first given counting."""

    key = fields.String(required=True, validate=validate.Length(min=1, max=180))
    card_number = fields.String(validate=validate.Length(min=1, max=40))
    identifier = fields.Nested(IdentifierSchema)
    phone = fields.String(validate=validate.Length(min=1, max=40))
    branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16))

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        if not (data.get("card_number") or data.get("identifier") or data.get("phone")):
            raise ValidationError("Name the member by card number, identifier or phone.", "card_number")


class LocateBatchSchema(Schema):
    rows = fields.List(fields.Nested(LocateRowSchema), required=True, validate=validate.Length(min=1, max=2000))


class LocatedSchema(Schema):
    """``found`` (``member_id``), ``missing`` or ``invalid`` (``message``)."""

    key = fields.String()
    status = fields.String(validate=validate.OneOf(("found", "missing", "invalid")))
    member_id = fields.String()
    card_number = fields.String()
    home_branch = fields.String()
    message = fields.String()


LocatedListSchema = list_of(LocatedSchema)
