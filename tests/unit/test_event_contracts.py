"""Event contracts (kit.contracts): a producer cannot emit what its contract does not say."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from marshmallow import fields, validate

from services.kit.clock import isoformat
from services.kit.contracts import ContractBroken, Contracts, Event, UtcTime, declared, load_event
from services.kit.errors import Invalid
from services.members import events as members_events
from services.points import events as points_events

EVENTS = Contracts("clinic")


class Line(Event):
    category = fields.String(required=True, validate=validate.OneOf(["treatment", "drug"]))
    amount_minor = fields.Integer(required=True, validate=validate.Range(min=0))


@EVENTS.event("visit_done")
class VisitDone(Event):
    """A visit was done."""

    visit_id = fields.UUID(required=True)
    done_at = UtcTime(required=True)
    day = fields.Date(required=True)
    paid = fields.Boolean(required=True)
    referral = fields.String(required=True, allow_none=True)
    lines = fields.List(fields.Nested(Line), required=True)

    sample = {"visit_id": uuid.UUID(int=7), "done_at": datetime(2026, 3, 5, 2, 30, tzinfo=UTC),
              "day": date(2026, 3, 5), "paid": True, "referral": None,
              "lines": [{"category": "treatment", "amount_minor": 12800}]}


def test_a_sample_goes_out_as_json_and_comes_back_as_itself():
    body = EVENTS.wire("visit_done", VisitDone.sample)
    assert body == {"visit_id": "00000000-0000-0000-0000-000000000007", "done_at": "2026-03-05T02:30:00Z",
                    "day": "2026-03-05", "paid": True, "referral": None,
                    "lines": [{"category": "treatment", "amount_minor": 12800}]}
    received = load_event(VisitDone, {**body, "event_id": "e1", "occurred_at": "2026-03-05T02:30:01Z"})
    assert received == {**VisitDone.sample, "event_id": "e1",
                        "occurred_at": datetime(2026, 3, 5, 2, 30, 1, tzinfo=UTC)}


def test_a_time_in_another_zone_goes_out_in_utc():
    beijing = timezone(timedelta(hours=8))
    body = EVENTS.wire("visit_done", {**VisitDone.sample, "done_at": datetime(2026, 3, 5, 10, 30, tzinfo=beijing)})
    assert body["done_at"] == "2026-03-05T02:30:00Z"


@pytest.mark.parametrize(("change", "says"), [
    ({"visit_id": None}, "visit_id: null"),
    ({"visit_id": "00000000-0000-0000-0000-000000000007"}, "visit_id: str"),
    ({"done_at": "2026-03-05T02:30:00Z"}, "done_at: str"),
    ({"done_at": datetime(2026, 3, 5, 2, 30)}, "aware"),
    ({"day": datetime(2026, 3, 5, 2, 30, tzinfo=UTC)}, "day: datetime"),
    ({"paid": 1}, "paid: int"),
    ({"lines": [{"category": "treatment", "amount_minor": "12800"}]}, "lines[0].amount_minor: str"),
    ({"lines": [{"category": "treatment", "amount_minor": True}]}, "lines[0].amount_minor: bool"),
    ({"lines": [{"category": "surgery", "amount_minor": 1}]}, "Must be one of"),
    ({"lines": [{"category": "drug", "amount_minor": -1}]}, "greater than or equal to 0"),
    ({"lines": [{"category": "drug"}]}, "lines[0].amount_minor: missing"),
    ({"branch": "SH01"}, "branch: not in the contract"),
])
def test_a_payload_that_breaks_the_contract_fails_in_the_producer(change, says):
    with pytest.raises(ContractBroken) as raised:
        EVENTS.wire("visit_done", {**VisitDone.sample, **change})
    assert says in str(raised.value)
    assert "clinic.visit_done" in str(raised.value)


def test_a_missing_field_fails_even_when_it_may_be_null():
    payload = {k: v for k, v in VisitDone.sample.items() if k != "referral"}
    with pytest.raises(ContractBroken, match="referral: missing"):
        EVENTS.wire("visit_done", payload)


def test_an_undeclared_event_type_fails():
    with pytest.raises(ContractBroken, match="declares no event 'visit_gone'"):
        EVENTS.wire("visit_gone", {})


def test_a_consumer_ignores_fields_added_later_but_refuses_a_broken_body():
    body = {**EVENTS.wire("visit_done", VisitDone.sample), "event_id": "e1", "occurred_at": None, "newer": 1}
    assert "newer" not in load_event(VisitDone, body)
    with pytest.raises(Invalid, match="clinic.visit_done"):
        load_event(VisitDone, {**body, "visit_id": "not-a-uuid"})
    with pytest.raises(Invalid, match="event_id"):
        load_event(VisitDone, {k: v for k, v in body.items() if k != "event_id"})
    with pytest.raises(Invalid):
        load_event(VisitDone, {**body, "done_at": "2026-03-05T02:30:00"})  # no zone: ambiguous


def test_a_contract_must_say_what_happened_give_a_sample_and_require_every_field():
    contracts = Contracts("clinic")
    with pytest.raises(ValueError, match="docstring"):
        contracts.event("a")(type("A", (Event,), {"sample": {"x": 1}, "x": fields.Integer(required=True)}))
    with pytest.raises(ValueError, match="sample"):
        contracts.event("b")(type("B", (Event,), {"__doc__": "B.", "x": fields.Integer(required=True)}))
    with pytest.raises(ValueError, match="required"):
        contracts.event("c")(type("C", (Event,), {"__doc__": "C.", "sample": {"x": 1}, "x": fields.Integer()}))
    contracts.event("d")(type("D", (Event,), {"__doc__": "D.", "sample": {"x": 1}, "x": fields.Integer(required=True)}))
    with pytest.raises(ValueError, match="twice"):
        contracts.event("d")(type("D2", (Event,), {"__doc__": "D.", "sample": {"x": 1}}))


# --- every producer's declared contracts --------------------------------------------------------------

DECLARED = [(contracts.producer, event_type, contract)
            for contracts in declared() for event_type, contract in contracts.events.items()]


def test_every_producer_in_the_docs_order_declares_its_events():
    assert [contracts.producer for contracts in declared()] == ["members", "points", "records", "notifications",
                                                                     "interfaces"]
    assert len(DECLARED) == 32


@pytest.mark.parametrize(("producer", "event_type", "contract"), DECLARED,
                         ids=[f"{producer}.{event_type}" for producer, event_type, _ in DECLARED])
def test_a_declared_sample_goes_out_and_comes_back_unchanged(producer, event_type, contract):
    contracts = next(c for c in declared() if c.producer == producer)
    body = contracts.wire(event_type, contract.sample)
    assert json.loads(json.dumps(body)) == body  # plain JSON: no value kombu would have to tag
    envelope = {"event_id": "e1", "occurred_at": "2026-03-05T02:30:01Z"}
    assert load_event(contract, {**body, **envelope}) == {
        **contract.sample, "event_id": "e1", "occurred_at": datetime(2026, 3, 5, 2, 30, 1, tzinfo=UTC)}


def test_a_time_goes_out_exactly_as_the_clock_formats_it_microseconds_and_all():
    # notifications build a dedupe key from tier_changed's effective_at as sent: it must not change form
    moment = datetime(2026, 3, 5, 2, 30, 0, 123456, tzinfo=UTC)
    body = members_events.EVENTS.wire("tier_changed", {**members_events.TierChanged.sample, "effective_at": moment})
    assert body["effective_at"] == isoformat(moment) == "2026-03-05T02:30:00.123456Z"
    whole = datetime(2026, 3, 5, 2, 30, tzinfo=UTC)
    assert members_events.EVENTS.wire("tier_changed", {**members_events.TierChanged.sample, "effective_at": whole})["effective_at"] == \
        isoformat(whole) == "2026-03-05T02:30:00Z"


def test_a_reward_redemption_names_no_bill_but_still_carries_the_keys():
    reward = {**points_events.PointsRedeemed.sample, "kind": "reward", "reward_id": uuid.UUID(int=3), "amount_minor": None,
              "currency": None, "bill_id": None}
    body = points_events.EVENTS.wire("points_redeemed", reward)
    assert (body["amount_minor"], body["currency"], body["bill_id"]) == (None, None, None)
    without = {k: v for k, v in reward.items() if k not in ("amount_minor", "currency", "bill_id")}
    with pytest.raises(ContractBroken, match="amount_minor: missing"):
        points_events.EVENTS.wire("points_redeemed", without)


@pytest.mark.parametrize("amount", [10.5, 10.0, "10", True])
def test_a_consumer_refuses_an_amount_that_is_not_a_whole_number(amount):
    body = {**EVENTS.wire("visit_done", VisitDone.sample), "event_id": "e1", "occurred_at": None}
    body["lines"] = [{"category": "drug", "amount_minor": amount}]
    with pytest.raises(Invalid):
        load_event(VisitDone, body)


def test_docs_events_md_says_what_the_declarations_say():
    from services.kit import contracts

    page = contracts.DOCS.read_text(encoding="utf-8")
    assert contracts.documented(page) == contracts.render(), (
        "docs/events.md is stale: run python -m services.kit.contracts --write")


def test_every_consumer_reads_the_producers_declared_contract_and_its_sample_loads():
    from services.kit import contracts

    declared = {(c.producer, event_type): contract
                for c in contracts.declared() for event_type, contract in c.events.items()}
    seen = 0
    for handler, producer, event_type, contract in contracts.handlers():
        assert (producer, event_type) in declared, f"{handler} consumes {producer}.{event_type}, which nobody declares"
        assert contract is declared[(producer, event_type)], f"{handler} does not read {producer}.{event_type}'s contract"
        producers = next(c for c in contracts.declared() if c.producer == producer)
        body = {**producers.wire(event_type, contract.sample), "event_id": "e-1", "occurred_at": "2026-03-05T02:30:00Z"}
        assert load_event(contract, body)["event_id"] == "e-1"
        seen += 1
    assert seen >= 30  # every service's handlers were found (31 when this was written)


# --- a batch's payloads checked together (wire_many, kit.outbox_batch) ----------------------------------


def test_many_payloads_go_out_as_each_would_alone():
    payloads = [{**VisitDone.sample, "visit_id": uuid.UUID(int=n), "paid": n % 2 == 0} for n in range(1, 6)]
    assert EVENTS.wire_many("visit_done", payloads) == [EVENTS.wire("visit_done", p) for p in payloads]
    assert EVENTS.wire_many("visit_done", []) == []


@pytest.mark.parametrize(("change", "says"), [
    ({"visit_id": None}, "payload 2: visit_id: null"),
    ({"done_at": datetime(2026, 3, 5, 2, 30)}, "aware"),
    ({"lines": [{"category": "surgery", "amount_minor": 1}]}, "payload 2: {'lines': {0: {'category': ['Must be one of"),
    ({"lines": [{"category": "drug", "amount_minor": -1}]}, "greater than or equal to 0"),
    ({"branch": "SH01"}, "payload 2: branch: not in the contract"),
])
def test_one_payload_that_breaks_the_contract_fails_the_batch_and_is_named(change, says):
    payloads = [dict(VisitDone.sample) for _ in range(4)]
    payloads[2] = {**payloads[2], **change}
    with pytest.raises(ContractBroken) as raised:
        EVENTS.wire_many("visit_done", payloads)
    assert says in str(raised.value)
    assert "payload 0" not in str(raised.value) and "payload 3" not in str(raised.value)


def test_a_value_met_before_in_the_batch_is_refused_each_time_it_breaks_the_contract():
    # the field-by-field check remembers a value's verdict: the verdict, not just the first position, counts
    contracts = Contracts("clinic")

    @contracts.event("short_referral")
    class ShortReferral(Event):
        """A referral of at most one character."""

        referral = fields.String(required=True, validate=validate.Length(max=1))
        sample = {"referral": "x"}

    with pytest.raises(ContractBroken) as raised:
        contracts.wire_many("short_referral", [{"referral": "x" * n} for n in (1, 2, 1, 1, 2, 1)])
    assert [f"payload {n}:" in str(raised.value) for n in range(6)] == [False, True, False, False, True, False]


def test_a_contract_with_a_schema_validator_is_loaded_whole():
    from marshmallow import ValidationError, validates_schema

    contracts = Contracts("clinic")

    @contracts.event("ordered")
    class Ordered(Event):
        """Two numbers in order."""

        low = fields.Integer(required=True)
        high = fields.Integer(required=True)
        sample = {"low": 1, "high": 2}

        @validates_schema
        def in_order(self, data, **kwargs):
            if data["low"] > data["high"]:
                raise ValidationError("low above high")

    assert contracts.wire_many("ordered", [{"low": 1, "high": 2}, {"low": 2, "high": 2}]) == [
        {"low": 1, "high": 2}, {"low": 2, "high": 2}]
    with pytest.raises(ContractBroken, match="payload 1: .*low above high"):
        contracts.wire_many("ordered", [{"low": 1, "high": 2}, {"low": 3, "high": 2}])
    with pytest.raises(ContractBroken, match="low above high"):
        contracts.wire("ordered", {"low": 3, "high": 2})


def test_each_member_of_an_import_is_what_its_own_member_enrolled_would_say():
    """``members_imported`` lists what a ``member_enrolled`` a member said (issue 19): ``enrolments`` gives each back
    as the consumers' ``member_enrolled`` handlers read it, with the batch's envelope."""
    sample = members_events.MembersImported.sample
    envelope = {"event_id": "e1", "occurred_at": "2026-03-05T02:30:01Z"}
    batch = load_event(members_events.MembersImported,
                       {**members_events.EVENTS.wire("members_imported", sample), **envelope})
    one_by_one = [load_event(members_events.MemberEnrolled,
                             {**members_events.EVENTS.wire("member_enrolled", member), **envelope})
                  for member in sample["members"]]
    assert members_events.enrolments(batch) == one_by_one
    with pytest.raises(ContractBroken, match="members"):
        members_events.EVENTS.wire("members_imported", {"members": []})  # a batch that enrolled nobody says nothing


def _schema_load(contract, body):
    """What the contract's schema itself answers for ``body`` (the consumer's schema, undeclared keys dropped)."""
    from marshmallow import EXCLUDE
    return contract(unknown=EXCLUDE).load(body)


@pytest.mark.parametrize(("producer", "event_type", "contract"),
                         [(c.producer, t, e) for c in declared() for t, e in c.events.items()])
def test_every_contract_is_loaded_by_the_plain_path_exactly_as_its_schema_loads_it(producer, event_type, contract):
    from services.kit.contracts import _fast_load, _loader, _plan
    assert _plan(_loader(contract)) is not None, f"{producer}.{event_type}: the plain load stands aside for it"
    body = declared_contracts(producer).wire(event_type, contract.sample)
    assert _fast_load(_loader(contract), body, {}, top=True) == _schema_load(contract, body)


def declared_contracts(producer):
    return next(c for c in declared() if c.producer == producer)


def test_a_batch_loads_as_its_schema_loads_it_values_met_again_included():
    members = [{"member_id": uuid.UUID(int=n), "home_branch": "SH01" if n % 3 else "SH02",
                "referrer_id": None if n % 2 else uuid.UUID(int=1), "preferred_language": "zh-Hans",
                "source": "import", "enrolled_at": datetime(2026, 3, 5, 2, 30, tzinfo=UTC)} for n in range(1, 400)]
    body = members_events.EVENTS.wire("members_imported", {"members": members})
    received = load_event(members_events.MembersImported, {**body, "event_id": "e1", "occurred_at": None})
    assert received == {**_schema_load(members_events.MembersImported, body), "event_id": "e1", "occurred_at": None}
    assert received["members"] == members


@pytest.mark.parametrize(("change", "field"), [
    ({"preferred_language": "xx"}, "preferred_language"),  # a validator refuses
    ({"member_id": "not-a-uuid"}, "member_id"),
    ({"referrer_id": 5}, "referrer_id"),
    ({"enrolled_at": None}, "enrolled_at"),  # null where none is allowed
])
def test_a_member_of_a_batch_that_breaks_the_contract_is_refused_with_the_schemas_own_words(change, field):
    body = members_events.EVENTS.wire("members_imported", members_events.MembersImported.sample)
    body["members"][1] = {**body["members"][1], **change}
    with pytest.raises(Invalid) as refused:
        load_event(members_events.MembersImported, {**body, "event_id": "e1", "occurred_at": None})
    from marshmallow import ValidationError
    with pytest.raises(ValidationError) as schema_says:
        _schema_load(members_events.MembersImported, body)
    assert refused.value.fields == schema_says.value.messages
    assert field in refused.value.fields["members"][1]


def test_a_key_a_nested_object_does_not_declare_is_what_its_schema_says():
    body = members_events.EVENTS.wire("members_imported", members_events.MembersImported.sample)
    body["members"][0] = {**body["members"][0], "added_later": 1}
    from marshmallow import ValidationError
    try:
        expected = _schema_load(members_events.MembersImported, body)
    except ValidationError as error:
        with pytest.raises(Invalid) as refused:
            load_event(members_events.MembersImported, {**body, "event_id": "e1", "occurred_at": None})
        assert refused.value.fields == error.messages
    else:
        assert load_event(members_events.MembersImported, {**body, "event_id": "e1", "occurred_at": None}) == {
            **expected, "event_id": "e1", "occurred_at": None}


def test_a_list_its_own_validator_refuses_is_refused_as_the_schema_refuses_it():
    body = {"members": []}  # members_imported's list must hold at least one member
    from marshmallow import ValidationError
    with pytest.raises(ValidationError) as schema_says:
        _schema_load(members_events.MembersImported, body)
    with pytest.raises(Invalid) as refused:
        load_event(members_events.MembersImported, {**body, "event_id": "e1", "occurred_at": None})
    assert refused.value.fields == schema_says.value.messages
