"""The notifications service's contract: what its RPCs accept and return (also the gateway's OpenAPI).

The answers are these schemas' dumps (``DeliverySchema().dump(row)``): what the document says is what is sent.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from services.kit.schemas import Schema, StrictInteger, UtcTime, list_of, page_of
from services.members.events import SEGMENTS
from services.notifications.events import CHANNELS
from services.notifications.models import JOURNEY_STATES, STATES
from services.notifications.rules.composed import (
    EVERY,
    EXIT_EVENTS,
    MAX_STEPS,
    TEMPLATES,
    TRIGGER_EVENTS,
    VISIT_KINDS,
)
from services.notifications.rules.journeys import JOURNEYS
from services.notifications.templates import LANGUAGES
from services.records.schemas import QUEUES as FOLLOW_UP_QUEUES

MANUAL_JOURNEYS = tuple(code for code, journey in JOURNEYS.items() if journey.manual)
MAX_CONTEXT_KEYS = 30


def _check_context(value: dict[str, Any]) -> None:
    """A message context holds ids and facts for the template: a few short scalars, no records."""
    if len(value) > MAX_CONTEXT_KEYS:
        raise ValidationError(f"At most {MAX_CONTEXT_KEYS} entries.")
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 40:
            raise ValidationError("Keys are names of at most 40 characters.")
        if isinstance(item, (dict, list)) or (isinstance(item, str) and len(item) > 200):
            raise ValidationError(f"{key}: only short text, numbers and true/false.")


class DeliverySchema(Schema):
    id = fields.String()
    member_id = fields.String()
    journey = fields.String()
    channel = fields.String(allow_none=True)
    state = fields.String(metadata={"description": ", ".join(STATES)})
    reason = fields.String(allow_none=True, metadata={"description": "Why it was suppressed, failed or cancelled "
                                                      "(or why it is waiting for a retry)."})
    due_at = UtcTime(metadata={"description": "When it is (next) due: moved by quiet hours and retries."})
    created_at = UtcTime()
    updated_at = UtcTime()
    category = fields.String(metadata={"description": "service or marketing"})
    attempts = fields.Integer()
    language = fields.String(allow_none=True)
    provider_id = fields.String(allow_none=True)
    first_due_at = UtcTime(allow_none=True)
    expires_at = UtcTime(allow_none=True)
    sent_at = UtcTime(allow_none=True)
    delivered_at = UtcTime(allow_none=True)


DeliveryPageSchema = page_of(DeliverySchema)


class DeliveryStepSchema(Schema):
    at = UtcTime()
    state = fields.String()
    channel = fields.String(allow_none=True)
    detail = fields.String(allow_none=True)
    provider_id = fields.String(allow_none=True)


class StoredFacts(fields.Dict):
    """A JSON object kept as text (a delivery's context), answered as the object."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(json.loads(value) if value else {}, attr, obj, **kwargs)


class DeliveryDetailSchema(DeliverySchema):
    """One message with its context (ids and facts) and every step it went through."""

    context = StoredFacts(metadata={"description": "The ids and facts the message was made from."})
    steps = fields.List(fields.Nested(DeliveryStepSchema))


class SignInCodeSchema(Schema):
    """A member's one-time sign-in code to send by SMS now (the gateway's member page; services only)."""

    phone = fields.String(required=True, validate=validate.Regexp(r"^\+[1-9][0-9]{6,14}$", error="E.164, e.g. +8613812345678."))
    code = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{4,8}$", error="4 to 8 digits."))
    language = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES))
    minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=60))


class SignInCodeSentSchema(Schema):
    provider_id = fields.String(allow_none=True)
    language = fields.String()


class ScheduleMessageSchema(Schema):
    """A message staff or another service asks for (results ready, member day)."""

    member_id = fields.UUID(required=True)
    journey = fields.String(required=True, validate=validate.OneOf(MANUAL_JOURNEYS))
    due_at = fields.AwareDateTime(load_default=None, allow_none=True,
                                  metadata={"description": "When to send (UTC); now if absent. Quiet hours apply."})
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True,
                                      metadata={"description": "Do not send after this."})
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS),
                            metadata={"description": "Only this channel; else the member's best channel."})
    cause = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=120),
                          metadata={"description": "What the message is about (a result id): sent once per cause."})
    context = fields.Dict(load_default=dict, validate=_check_context,
                          metadata={"description": "Facts for the template (e.g. branch); never personal data."})

    @validates("context")
    def _context(self, value: dict[str, Any], **_: Any) -> None:
        branch = value.get("branch")
        if branch is not None and not isinstance(branch, str):
            raise ValidationError("branch: a branch code.")


class NotificationCancelSchema(Schema):
    reason = fields.String(load_default="cancelled by staff", validate=validate.Length(min=1, max=200))


class NotificationPreviewRequestSchema(Schema):
    journey = fields.String(required=True, validate=validate.OneOf(tuple(JOURNEYS)))
    channel = fields.String(load_default="sms", validate=validate.OneOf(CHANNELS))
    language = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES),
                             metadata={"description": "Default: the member's language, else the group's."})
    member_id = fields.UUID(load_default=None, allow_none=True,
                            metadata={"description": "Render for this member (name, language, branch)."})
    context = fields.Dict(load_default=dict, validate=_check_context,
                          metadata={"description": "Facts replacing the journey's sample ones."})


class NotificationPreviewSchema(Schema):
    journey = fields.String()
    channel = fields.String()
    language = fields.String()
    subject = fields.String()
    text = fields.String(metadata={"description": "The short form (SMS, LINE, WeChat)."})
    body = fields.String(metadata={"description": "The long form (e-mail text, inbox)."})
    html = fields.String(allow_none=True, metadata={"description": "E-mail HTML (email channel only)."})


class NotificationPreferencesChangeSchema(Schema):
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), allow_none=True,
                           validate=validate.Length(min=1, max=len(CHANNELS)),
                           metadata={"description": "Channels in the member's order; null: the group's default."})
    marketing_opt_out = fields.Boolean()
    service_opt_out = fields.Boolean()
    do_not_contact = fields.Boolean(metadata={"description": "No marketing and no recalls or reactivation calls."})

    @validates("channels")
    def _channels(self, value: list[str] | None, **_: Any) -> None:
        if value is not None and len(set(value)) != len(value):
            raise ValidationError("Name each channel once.")


class NotificationPreferencesSchema(Schema):
    member_id = fields.String()
    channels = fields.List(fields.String(), allow_none=True)
    effective_channels = fields.List(fields.String(), metadata={"description": "The order used when sending."})
    marketing_opt_out = fields.Boolean()
    service_opt_out = fields.Boolean()
    do_not_contact = fields.Boolean(metadata={"description": "No marketing and no recalls or reactivation calls."})
    consents = fields.Dict(allow_none=True, metadata={"description": "The member's channel consents (from members)."})
    updated_at = UtcTime(allow_none=True)


class InboxMessageSchema(Schema):
    id = fields.String()
    delivery_id = fields.String()
    journey = fields.String()
    language = fields.String()
    subject = fields.String()
    body = fields.String()
    created_at = UtcTime()
    read_at = UtcTime(allow_none=True)


class InboxPageSchema(page_of(InboxMessageSchema)):
    unread = fields.Integer()


class FestivalDateSchema(Schema):
    festival = fields.String()
    date = fields.Date()


class FestivalCalendarSchema(Schema):
    year = fields.Integer()
    seasons = fields.Dict(metadata={"description": "Local MM-DD -> season whose tip goes out that day."})
    festivals = fields.List(fields.Nested(FestivalDateSchema))


class StaffAlertSchema(Schema):
    id = fields.UUID()
    feedback_id = fields.String()
    branch = fields.String()
    channel = fields.String(metadata={"description": "email, sms, or none (no one to alert at the branch)."})
    urgent = fields.Boolean()
    state = fields.String(metadata={"description": "queued, sending, sent, failed or suppressed."})
    reason = fields.String(allow_none=True, metadata={"description": "Why it failed or was suppressed."})
    attempts = fields.Integer()
    provider_id = fields.String(allow_none=True)
    due_at = UtcTime()
    sent_at = UtcTime(allow_none=True)


class FeedbackAlertsSchema(Schema):
    feedback_id = fields.String()
    items = fields.List(fields.Nested(StaffAlertSchema), metadata={"description": "One per channel and address; "
                                                                                 "the address is not shown."})


class ReceiptOutcomeSchema(Schema):
    """What a provider callback did: how many receipts it carried and what each changed."""

    received = fields.Integer(metadata={"description": "Receipts and other events in the callback."})
    delivered = fields.Integer(metadata={"description": "Messages now delivered."})
    failed = fields.Integer(metadata={"description": "Messages now failed (the provider's reason recorded)."})
    unchanged = fields.Integer(metadata={"description": "Already in the state the receipt says (a repeat)."})
    unknown = fields.Integer(metadata={"description": "Not a message of ours (e.g. a staff alert)."})
    ignored = fields.Integer(metadata={"description": "Other events, or receipts contradicting a final state."})


class ReactivationQuerySchema(Schema):
    branch = fields.String(required=True, validate=validate.Length(min=1, max=16))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=200))


class ReactivationItemSchema(Schema):
    """A recall whose messages went unanswered: a member for customer service to call."""

    id = fields.String(metadata={"description": "The recall's id (to record a call)."})
    member_id = fields.String()
    recall_type = fields.String()
    due_on = fields.Date()
    attempts = fields.Integer(metadata={"description": "Recall messages sent."})
    reactivation_contacts = fields.Integer(metadata={"description": "Calls recorded so far."})
    last_contacted_at = UtcTime(allow_none=True)


ReactivationListSchema = list_of(ReactivationItemSchema)


# -- composed journeys (``rules.composed``) ----------------------------------------------------------------

SLUG = validate.Regexp(r"^[a-z][a-z0-9_]{0,23}$", error="Lower-case letters, digits and _ (at most 24).")


LOCAL_TIME = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="A local time, HH:MM.")


class _WaitSchema(Schema):
    days = StrictInteger(load_default=0, validate=validate.Range(min=0, max=366))
    hours = StrictInteger(load_default=0, validate=validate.Range(min=0, max=23))
    at = fields.String(load_default=None, allow_none=True, validate=LOCAL_TIME, metadata={
        "description": "Ends ``days`` later at this local time (hours ignored), or now if that moment passed."})


class _TextSchema(Schema):
    subject = fields.String(required=True, validate=validate.Length(max=200))
    text = fields.String(required=True, validate=validate.Length(max=2000))


class _CouponSchema(Schema):
    reward_id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "A coupon reward of points' catalogue (``GET /v1/rewards``): the coupon it describes is "
                       "issued to the member when the message goes, once per run and step."})


class _MessageStepSchema(Schema):
    texts = fields.Dict(keys=fields.String(validate=validate.OneOf(LANGUAGES)), values=fields.Nested(_TextSchema),
                        load_default=None, allow_none=True,
                        metadata={"description": "Per language (all four before activation): subject and text, "
                                                 "Jinja with member, branch, group, link (and coupon)."})
    template = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(TEMPLATES), metadata={
        "description": "Instead of texts: a shipped template (its four languages), for its trigger: "
                       + ", ".join(f"{name} ({event})" for name, event in TEMPLATES.items())})
    coupon = fields.Nested(_CouponSchema, load_default=None, allow_none=True)
    expires_after = fields.Nested(_WaitSchema, load_default=None, allow_none=True, metadata={
        "description": "Not sent once this long after the trigger's time (a visit's completion) has passed."})


class _TaskStepSchema(Schema):
    queue = fields.String(required=True, metadata={"description": "A follow-up queue of records: "
                                                   + ", ".join(FOLLOW_UP_QUEUES)})
    due_in_days = StrictInteger(load_default=0, validate=validate.Range(min=0, max=60))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class JourneyStepSchema(Schema):
    """Exactly one of ``wait``, ``message``, ``task``."""

    wait = fields.Nested(_WaitSchema)
    message = fields.Nested(_MessageStepSchema)
    task = fields.Nested(_TaskStepSchema)

    @validates_schema
    def _one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError("A step is exactly one of wait, message or task.", "_schema")


class _ScheduleSchema(Schema):
    every = fields.String(required=True, validate=validate.OneOf(EVERY))
    weekday = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=7),
                            metadata={"description": "1 = Monday … 7 = Sunday (every week)."})
    day = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=28),
                        metadata={"description": "Day of the month (every month)."})
    on = fields.Date(load_default=None, allow_none=True, metadata={"description": "The date (once)."})


class JourneyTriggerSchema(Schema):
    """An event with conditions, or a schedule (local days; the audience: active members, by segment)."""

    event = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(TRIGGER_EVENTS))
    schedule = fields.Nested(_ScheduleSchema, load_default=None, allow_none=True)
    categories = fields.List(fields.String(), load_default=list, validate=validate.Length(max=10))
    tiers = fields.List(fields.String(validate=SLUG), load_default=list, validate=validate.Length(max=10))
    segments = fields.List(fields.String(validate=validate.OneOf(SEGMENTS)), load_default=list)
    visit_kinds = fields.List(fields.String(validate=validate.OneOf(VISIT_KINDS)), load_default=list,
                              metadata={"description": "visit_completed: only visits of these kinds; [] = any."})
    first_visit = fields.Boolean(load_default=False, metadata={
        "description": "visit_completed: only the member's first completed visit."})


class JourneyDefinitionSchema(Schema):
    """A composed journey: a trigger, steps in order, the facts that end a member's run."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    category = fields.String(load_default="service", validate=validate.OneOf(("service", "marketing")), metadata={
        "description": "marketing: the marketing consent and the weekly cap apply too."})
    branches = fields.List(fields.String(validate=validate.Length(min=1, max=16)), load_default=list,
                           validate=validate.Length(max=50),
                           metadata={"description": "Only members and facts of these branches; [] = every branch "
                                                    "(group admins only)."})
    trigger = fields.Nested(JourneyTriggerSchema, required=True)
    steps = fields.List(fields.Nested(JourneyStepSchema), load_default=list,
                        validate=validate.Length(max=MAX_STEPS))
    exits = fields.List(fields.String(validate=validate.OneOf(EXIT_EVENTS)), load_default=list, metadata={
        "description": "Facts that end a member's run; do not contact always does."})
    once_per_member = fields.Boolean(load_default=False, metadata={
        "description": "One run per member ever (a first visit's survey), not one per trigger fact."})


class JourneyVersionSchema(Schema):
    version = fields.Integer()
    definition = fields.Dict()
    created_by = fields.String()
    created_at = UtcTime()


class JourneySchema(Schema):
    id = fields.String()
    name = fields.String()
    state = fields.String(metadata={"description": ", ".join(JOURNEY_STATES)})
    version = fields.Integer(metadata={"description": "The current version: new runs start on it; runs already "
                                                      "going finish on theirs."})
    trigger = fields.String(metadata={"description": "The event, or schedule."})
    branches = fields.List(fields.String())
    definition = fields.Dict()
    runs = fields.Dict(metadata={"description": "Runs by state (running, finished, exited)."})
    versions = fields.List(fields.Nested(JourneyVersionSchema), metadata={"description": "On a single journey."})
    created_by = fields.String()
    created_at = UtcTime()
    updated_at = UtcTime()


JourneyPageSchema = page_of(JourneySchema)


class JourneyQuerySchema(Schema):
    state = fields.String(load_default=None, validate=validate.OneOf(JOURNEY_STATES))
    branch = fields.String(load_default=None, validate=validate.Length(min=1, max=16))
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class DryRunStepSchema(Schema):
    step = fields.Integer()
    kind = fields.String()
    members = fields.Integer()


class JourneyDryRunSchema(Schema):
    journey_id = fields.String()
    version = fields.Integer()
    method = fields.String(metadata={"description": "How the counts were made."})
    since = UtcTime()
    until = UtcTime()
    entering = fields.Integer(metadata={"description": "Runs that would start."})
    steps = fields.List(fields.Nested(DryRunStepSchema))


class JourneyPreviewRequestSchema(Schema):
    member_id = fields.UUID(load_default=None, allow_none=True, metadata={
        "description": "Render for this member (their name as the caller may see it, their branch); "
                       "else a sample member."})
    channel = fields.String(load_default="sms", validate=validate.OneOf(CHANNELS))
    version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1),
                            metadata={"description": "The version to show; the current one when absent."})


class _RenderedSchema(Schema):
    language = fields.String(metadata={"description": "The language the words are in (a template missing one "
                                                      "falls back as sending does)."})
    subject = fields.String()
    text = fields.String()
    body = fields.String()


class _PreviewStepSchema(Schema):
    step = fields.Integer()
    template = fields.String(allow_none=True)
    coupon = fields.Dict(allow_none=True, metadata={"description": "The sample coupon shown (its reward's terms)."})
    languages = fields.Dict(keys=fields.String(), values=fields.Nested(_RenderedSchema))


class JourneyPreviewSchema(Schema):
    """Each message step of a journey's version as it would be sent, in each of the four languages."""

    journey_id = fields.String()
    version = fields.Integer()
    channel = fields.String()
    member_id = fields.String(allow_none=True)
    steps = fields.List(fields.Nested(_PreviewStepSchema))
