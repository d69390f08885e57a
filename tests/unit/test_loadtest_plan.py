"""Load-test options and plans (no I/O): mixes, steps, quotas, bodies that classify as intended."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from faker import Faker

from agents.classify import classify
from config import load_companies
from config.settings import Settings
from smsfold.loadtest.generate import body_for, plan_messages, sender_numbers
from smsfold.loadtest.options import (
    ALL_TYPES,
    LoadTestOptions,
    OptionError,
    parse_mix,
    parse_steps,
    type_weights,
)

LOADTEST = load_companies(Settings().companies_file).get("loadtest")
assert LOADTEST is not None


def test_mix_listed_shares_as_given_rest_split_evenly() -> None:
    weights = type_weights({"subscribe": 0.4}, frozenset({"reaction"}))
    assert weights["subscribe"] == pytest.approx(0.4)
    assert "reaction" not in weights
    others = [w for t, w in weights.items() if t != "subscribe"]
    assert len(others) == 5 and all(w == pytest.approx(0.12) for w in others)


@pytest.mark.parametrize(
    ("mix", "skip", "message"),
    [
        ({"subscribe": 0.8, "unsubscribe": 0.5}, frozenset(), "more than 1"),
        ({"reaction": 0.1}, frozenset({"reaction"}), "skipped"),
        ({}, frozenset(ALL_TYPES), "every message type"),
    ],
)
def test_bad_mixes_are_named(mix: dict[str, float], skip: frozenset[str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        type_weights(mix, skip)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subscribe", "type=share"),
        ("bogus=0.1", "unknown message type"),
        ("help=x", "not a number"),
        ("help=-1", "negative"),
    ],
)
def test_bad_mix_text_is_named(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_mix(text)


def test_steps() -> None:
    assert parse_steps("200,500,1000") == (200.0, 500.0, 1000.0)
    with pytest.raises(OptionError, match="--steps"):
        parse_steps("200,fast")
    options = LoadTestOptions(company_ids=("loadtest",), duration_s=10, steps=(200, 500), step_seconds=5)
    assert [options.rate_at(t) for t in (0, 4.9, 5, 100)] == [200, 200, 500, 500]
    assert options.planned_duration_s == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--message-count or --duration"),
        ({"message_count": 5, "vendor": "sinch"}, "--vendor"),
        ({"message_count": 5, "rate": 10, "steps": (1.0,)}, "exclude"),
        ({"message_count": 5, "skip_types": frozenset({"spam"})}, "unknown message type"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        LoadTestOptions(company_ids=("loadtest",), **kwargs)  # type: ignore[arg-type]


def test_exact_quotas_and_shuffled_order() -> None:
    assert LOADTEST is not None
    options = LoadTestOptions(company_ids=("loadtest",), message_count=103, seed=1)
    plan = list(plan_messages(options, [LOADTEST]))
    counts = Counter(m.message_type for m in plan)
    assert sum(counts.values()) == 103 and set(counts) == set(ALL_TYPES)
    assert max(counts.values()) - min(counts.values()) <= 1
    # Randomized: the first 15 messages are not all one type.
    assert len({m.message_type for m in plan[:15]}) > 1
    assert len({m.message_id for m in plan}) == 103


def test_not_randomized_sends_one_type_after_another() -> None:
    assert LOADTEST is not None
    options = LoadTestOptions(company_ids=("loadtest",), message_count=21, randomize=False, seed=1)
    types = [m.message_type for m in plan_messages(options, [LOADTEST])]
    assert types == [t for t in ALL_TYPES for _ in range(3)]


def test_every_generated_body_classifies_as_intended() -> None:
    assert LOADTEST is not None
    rng, fake = random.Random(5), Faker("en_US")
    fake.seed_instance(5)
    for message_type in ALL_TYPES:
        for _ in range(30):
            body = body_for(message_type, LOADTEST, fake, rng)
            assert classify(body, custom_keywords=LOADTEST.keywords.custom).message_type == message_type, body


def test_group_id_reuses_the_same_senders() -> None:
    a = sender_numbers(50, "bfcm-group", random.Random(1))
    b = sender_numbers(50, "bfcm-group", random.Random(2))
    c = sender_numbers(50, None, random.Random(3))
    assert a == b and len(set(a)) == 50 and a != c
    assert all(n.startswith("+1") and len(n) == 12 for n in a)
