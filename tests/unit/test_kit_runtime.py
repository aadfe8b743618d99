"""The kit's runtime shortcuts keep their promises: a shared schema answers as a fresh one, and a started
container takes its process's start-up out of the collector's reach."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from services.kit.container import _freeze_start_up
from services.members.schemas import ConsentsSchema, MemberSchema


def test_a_shared_schema_is_one_instance_per_options_and_dumps_as_a_fresh_one():
    member = SimpleNamespace(
        id="m-1", card_number="C1", referral_code="R1", referred_by_id=None, full_name="Li Hua", phone="+8613800138000",
        email="li@example.com", gender="female", birth_date="1990-01-01", preferred_language="zh-CN",
        document_type="resident_id", document_number="110101199001011234", home_branch="SH01", status="active",
        tier="silver", source="desk", enrolled_at=None, updated_at=None, merged_into_id=None, version=3)
    for number, channel in enumerate(ConsentsSchema._declared_fields):  # every consent column the schema reads
        setattr(member, f"consent_{channel}", number % 2 == 0)
    masked = MemberSchema.shared(reveal_phone=False, reveal_document=False)
    assert masked is MemberSchema.shared(reveal_document=False, reveal_phone=False)
    assert masked is not MemberSchema.shared(reveal_phone=True, reveal_document=True)
    for reveal in (False, True):
        fresh = MemberSchema(reveal_phone=reveal, reveal_document=reveal).dump(member)
        assert MemberSchema.shared(reveal_phone=reveal, reveal_document=reveal).dump(member) == fresh
        assert MemberSchema.shared(reveal_phone=reveal, reveal_document=reveal).dump(member) == fresh  # no state kept
    assert masked.dump(member)["phone"] != member.phone  # masked stays masked after a revealing dump


def test_the_first_container_start_freezes_the_start_up_once():
    _freeze_start_up()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # modules, schemas, mappers: the collector no longer walks them
    kept = [[] for _ in range(1_000)]  # objects the collector tracks, alive at the second start
    _freeze_start_up()  # a second container in the same process freezes nothing more
    assert gc.get_freeze_count() == frozen, len(kept)
