"""The inbound classifier: a pure function from a message body to one of the seven message types.

Rules (../shared/DOMAIN.md section 3): keywords are whole-message, case-, whitespace- and
punctuation-tolerant; a US message containing the word "stop" is an opt-out; iMessage reactions relayed
as text are never keywords.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from streams.events import MessageType

V = TypeVar("V")

__all__ = ["Classification", "classify", "find_custom_keyword", "normalize_keyword"]

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "Y", "UNSTOP"})
HELP = frozenset({"HELP"})
INFO = frozenset({"INFO"})

_REACTION_VERB = (
    r"(?:Loved|Liked|Disliked|Laughed at|Emphasized|Questioned"
    r"|Removed (?:an? )?\S+(?: \S+)? from|Reacted \S+(?: \S+)? to)"
)
# A tapback names the message it reacts to: quoted text (straight or curly quotes) or an attachment.
_REACTION = re.compile(
    rf"^{_REACTION_VERB}\s+(?:[\"“”‘’'].*|an? (?:image|photo|video|movie|attachment|audio message|sticker))$",
    re.DOTALL,
)
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_SEPARATORS = re.compile(r"[\s\-_.]+")
_STOP_WORD = re.compile(r"\bstop\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Classification:
    """The message type and, for keyword types, the normalized keyword that matched."""

    message_type: MessageType
    keyword: str | None = None


def normalize_keyword(body: str) -> str:
    """Upper-case the body, fold width/compatibility forms, drop edge punctuation, squeeze spaces."""
    text = unicodedata.normalize("NFKC", body).strip()
    text = _EDGE_PUNCT.sub("", text)
    return " ".join(text.upper().split())


def classify(
    body: str, *, custom_keywords: Mapping[str, object] | None = None, us_recipient: bool = True
) -> Classification:
    """Classify an inbound message body for a company with the given custom keywords."""
    if _REACTION.match(body.strip()):
        return Classification(MessageType.REACTION)
    word = normalize_keyword(body)
    # "OPT OUT", "Opt-Out" and "stop all" are the one-word keywords typed with a separator.
    compact = _SEPARATORS.sub("", word)
    if compact in OPT_OUT:
        return Classification(MessageType.UNSUBSCRIBE, compact)
    if compact in OPT_IN:
        return Classification(MessageType.SUBSCRIBE, compact)
    if compact in HELP:
        return Classification(MessageType.HELP, compact)
    if compact in INFO:
        return Classification(MessageType.INFO, compact)
    if custom_keywords:
        for keyword in custom_keywords:
            if normalize_keyword(keyword) == word:
                return Classification(MessageType.CUSTOM_KEYWORD, normalize_keyword(keyword))
    # Revocation "in any reasonable manner": a US message that contains the word stop opts out.
    if us_recipient and _STOP_WORD.search(body):
        return Classification(MessageType.UNSUBSCRIBE, "STOP")
    return Classification(MessageType.UNRECOGNIZED)


def find_custom_keyword(custom_keywords: Mapping[str, V], keyword: str | None) -> V | None:
    """The company's settings for a keyword that ``classify`` matched (it reports the normalized form)."""
    if keyword is None:
        return None
    for name, value in custom_keywords.items():
        if normalize_keyword(name) == keyword:
            return value
    return None
