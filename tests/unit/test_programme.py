"""The default programme: each tier inherits the benefits of the tiers below."""

from services.members.programme import DEFAULT_PROGRAMME


def test_ladder_order_and_start():
    assert [tier.code for tier in DEFAULT_PROGRAMME.tiers] == ["standard", "silver", "gold", "diamond"]
    assert DEFAULT_PROGRAMME.rank("gold") == 2


def test_standard_has_the_base_horizon_and_nothing_else():
    benefits = DEFAULT_PROGRAMME.benefits_of("standard")
    assert benefits["booking_horizon_days"] == 3
    assert benefits["quotas"] == {} and set(benefits["discounts"].values()) == {0}
    assert benefits["priority_booking"] is False


def test_quotas_accumulate_and_horizon_grows_from_gold():
    assert DEFAULT_PROGRAMME.benefits_of("silver")["quotas"] == {"free_cleaning": 1}
    gold = DEFAULT_PROGRAMME.benefits_of("gold")
    assert gold["quotas"] == {"free_cleaning": 1, "full_oral_exam": 1}
    assert gold["booking_horizon_days"] == 7 and gold["priority_booking"] is True
    diamond = DEFAULT_PROGRAMME.benefits_of("diamond")
    assert diamond["quotas"] == {"free_cleaning": 1, "full_oral_exam": 1, "premium_treatment_discount": 1,
                                 "custom_care_package": 1}
    assert diamond["booking_horizon_days"] == 7 and diamond["dedicated_advisor"] is True
    assert diamond["event_invitations"] is True  # inherited from silver


def test_discounts_never_shrink_up_the_ladder():
    previous = DEFAULT_PROGRAMME.benefits_of("standard")["discounts"]
    for tier in ("silver", "gold", "diamond"):
        current = DEFAULT_PROGRAMME.benefits_of(tier)["discounts"]
        assert all(current[category] >= previous[category] for category in previous)
        previous = current
