"""Planned load: which message types, from which senders, in which order, with realistic bodies.

Bodies are generated per type and checked against the classifier the pipeline uses, so the intended
type of every message is known and the verifier can count per type.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from faker import Faker

from agents.classify import classify
from config.companies import Company
from smsfold.loadtest.options import LoadTestOptions, OptionError, type_weights
from smsfold.webhooks import new_twilio_sid

__all__ = ["PlannedMessage", "body_for", "plan_messages", "sender_numbers"]

# Area codes of real US geographies, so generated senders look like the traffic of a US program.
_AREA_CODES = (201, 212, 213, 305, 312, 404, 415, 469, 503, 512, 602, 617, 646, 702, 713, 808, 917, 971)

_BODIES: dict[str, tuple[str, ...]] = {
    "subscribe": ("START", "Yes", "y", "unstop", "Start", "YES!"),
    "unsubscribe": ("STOP", "stop", "Unsubscribe", "cancel", "STOP ALL", "please stop texting me", "End"),
    "help": ("HELP", "help", "Help?"),
    "info": ("INFO", "info", "Info."),
}
_REACTIONS = ("Loved", "Liked", "Disliked", "Laughed at", "Emphasized", "Questioned")


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message of the run, before it is sent."""

    index: int
    message_type: str
    company: Company
    sender: str
    body: str
    message_id: str


def sender_numbers(count: int, group_id: str | None, rng: random.Random) -> list[str]:
    """``count`` distinct US mobile-looking numbers; the same ``group_id`` always gives the same ones."""
    source = (
        random.Random(int.from_bytes(hashlib.sha256(group_id.encode()).digest()[:8])) if group_id else rng
    )
    numbers: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < count:
        area = source.choice(_AREA_CODES)
        number = f"+1{area}{source.randint(200, 999)}{source.randint(0, 9999):04d}"
        if number not in numbers:
            numbers.add(number)
            ordered.append(number)
    return ordered


def body_for(message_type: str, company: Company, fake: Faker, rng: random.Random) -> str:
    """A body that the classifier puts in ``message_type`` for this company."""
    custom = company.keywords.custom
    if message_type in _BODIES:
        body = rng.choice(_BODIES[message_type])
    elif message_type == "custom_keyword":
        if not custom:
            raise OptionError(
                f"company {company.id!r} has no custom keywords; add some or use --skip-types custom_keyword"
            )
        body = rng.choice(sorted(custom))
        body = body.lower() if rng.random() < 0.3 else body
    elif message_type == "reaction":
        quote_open, quote_close = rng.choice((("“", "”"), ('"', '"')))
        body = f"{rng.choice(_REACTIONS)} {quote_open}{fake.sentence(nb_words=6)}{quote_close}"
    else:
        body = fake.sentence(nb_words=rng.randint(4, 14))
    for _ in range(20):
        got = classify(body, custom_keywords=custom).message_type.value
        if got == message_type:
            return body
        # Faker may write "stop" or a keyword into a sentence: draw again.
        body = fake.sentence(nb_words=rng.randint(4, 14))
    raise OptionError(
        f"could not generate a {message_type} message for {company.id!r} (classifier says {got})"
    )


def plan_messages(options: LoadTestOptions, companies: list[Company]) -> Iterator[PlannedMessage]:
    """The run's messages in sending order; endless when only a duration bounds the run."""
    rng = random.Random(options.seed)
    fake = Faker("en_US")
    fake.seed_instance(rng.randrange(2**32))
    weights = type_weights(options.mix, options.skip_types)
    types, shares = list(weights), list(weights.values())
    senders = sender_numbers(options.senders, options.group_id, rng)
    count = options.message_count

    def make(index: int, message_type: str) -> PlannedMessage:
        company = companies[index % len(companies)]
        sender = senders[rng.randrange(len(senders))]
        return PlannedMessage(
            index, message_type, company, sender, body_for(message_type, company, fake, rng), new_twilio_sid()
        )

    if count is not None and not options.randomize:
        # Not randomized: the seed's original shape, all messages of one type, then the next type.
        quotas = _quotas(count, weights)
        index = 0
        for message_type in types:
            for _ in range(quotas[message_type]):
                yield make(index, message_type)
                index += 1
        return
    if count is not None:
        sequence = [t for t, n in _quotas(count, weights).items() for _ in range(n)]
        rng.shuffle(sequence)
        for index, message_type in enumerate(sequence):
            yield make(index, message_type)
        return
    index = 0
    while True:
        yield make(index, rng.choices(types, shares)[0])
        index += 1


def _quotas(count: int, weights: dict[str, float]) -> dict[str, int]:
    """Exact per-type counts for ``count`` messages (largest remainders), so the mix is honoured exactly."""
    raw = {t: count * w for t, w in weights.items()}
    quotas = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: raw[t] - quotas[t], reverse=True)[: count - sum(quotas.values())]:
        quotas[t] += 1
    return quotas
