"""The seven-type classifier on a table of cases (pure, no I/O)."""

from __future__ import annotations

import pytest

from agents.classify import classify, find_custom_keyword
from config.companies import CustomKeyword
from streams.events import MessageType as T

CUSTOM = {
    "JOIN": CustomKeyword(reply="Welcome!", consent_effect="subscribe"),
    "SALE": CustomKeyword(reply="20% off"),
    "VIP Club": CustomKeyword(reply="You're in the club"),
}

CASES: list[tuple[str, T, str | None]] = [
    # opt-out keywords: whole message, any case, surrounding whitespace and punctuation
    ("STOP", T.UNSUBSCRIBE, "STOP"),
    ("stop", T.UNSUBSCRIBE, "STOP"),
    ("Stop", T.UNSUBSCRIBE, "STOP"),
    ("  Stop.  ", T.UNSUBSCRIBE, "STOP"),
    ("STOP!!!", T.UNSUBSCRIBE, "STOP"),
    ("\"stop\"", T.UNSUBSCRIBE, "STOP"),
    ("\tstop\n", T.UNSUBSCRIBE, "STOP"),
    ("ＳＴＯＰ", T.UNSUBSCRIBE, "STOP"),  # full-width letters from some keyboards
    ("STOPALL", T.UNSUBSCRIBE, "STOPALL"),
    ("Stop all", T.UNSUBSCRIBE, "STOPALL"),
    ("unsubscribe", T.UNSUBSCRIBE, "UNSUBSCRIBE"),
    ("Unsubscribe!", T.UNSUBSCRIBE, "UNSUBSCRIBE"),
    ("CANCEL", T.UNSUBSCRIBE, "CANCEL"),
    ("end", T.UNSUBSCRIBE, "END"),
    ("Quit", T.UNSUBSCRIBE, "QUIT"),
    ("revoke", T.UNSUBSCRIBE, "REVOKE"),
    ("optout", T.UNSUBSCRIBE, "OPTOUT"),
    ("opt out", T.UNSUBSCRIBE, "OPTOUT"),
    ("Opt-Out", T.UNSUBSCRIBE, "OPTOUT"),
    # US: any message containing the word "stop" revokes consent
    ("please stop texting me", T.UNSUBSCRIBE, "STOP"),
    ("STOP sending these", T.UNSUBSCRIBE, "STOP"),
    ("can you stop?", T.UNSUBSCRIBE, "STOP"),
    ("Stop. Now.", T.UNSUBSCRIBE, "STOP"),
    # ... but only the word, not words that contain it
    ("stopwatch for sale?", T.UNRECOGNIZED, None),
    ("nonstop deals!", T.UNRECOGNIZED, None),
    ("my bus stops here", T.UNRECOGNIZED, None),
    ("Cancel my order please", T.UNRECOGNIZED, None),
    ("the end of the line", T.UNRECOGNIZED, None),
    # opt-in
    ("START", T.SUBSCRIBE, "START"),
    ("start", T.SUBSCRIBE, "START"),
    (" Start! ", T.SUBSCRIBE, "START"),
    ("yes", T.SUBSCRIBE, "YES"),
    ("Yes.", T.SUBSCRIBE, "YES"),
    ("Y", T.SUBSCRIBE, "Y"),
    ("unstop", T.SUBSCRIBE, "UNSTOP"),
    ("UNSTOP", T.SUBSCRIBE, "UNSTOP"),
    # help and info
    ("HELP", T.HELP, "HELP"),
    ("help?", T.HELP, "HELP"),
    ("Help!", T.HELP, "HELP"),
    ("INFO", T.INFO, "INFO"),
    ("info.", T.INFO, "INFO"),
    ("help me with my order", T.UNRECOGNIZED, None),
    # company keywords
    ("JOIN", T.CUSTOM_KEYWORD, "JOIN"),
    ("join", T.CUSTOM_KEYWORD, "JOIN"),
    ("Join!", T.CUSTOM_KEYWORD, "JOIN"),
    ("sale", T.CUSTOM_KEYWORD, "SALE"),
    ("vip club", T.CUSTOM_KEYWORD, "VIP CLUB"),
    ("VIP  CLUB!", T.CUSTOM_KEYWORD, "VIP CLUB"),
    ("I want to join", T.UNRECOGNIZED, None),
    ("joined", T.UNRECOGNIZED, None),
    # reactions (iMessage tapbacks relayed as text) are never keywords, straight or curly quotes
    ("Loved “see you soon”", T.REACTION, None),
    ('Liked "STOP"', T.REACTION, None),
    ("Liked “Reply STOP to opt out”", T.REACTION, None),
    ("Disliked “Your order shipped”", T.REACTION, None),
    ("Laughed at “HELP”", T.REACTION, None),
    ("Emphasized “20% off today”", T.REACTION, None),
    ("Questioned “JOIN”", T.REACTION, None),
    ("Removed a heart from “Thanks!”", T.REACTION, None),
    ("Removed a like from “STOP”", T.REACTION, None),
    ("Reacted 😂 to “You won!”", T.REACTION, None),
    ("Reacted 👍 to \"stop\"", T.REACTION, None),
    ("Loved an image", T.REACTION, None),
    ("Liked ‘sale ends soon’", T.REACTION, None),
    # conversation: routed to a human
    ("hello there", T.UNRECOGNIZED, None),
    ("Where is my order #1234?", T.UNRECOGNIZED, None),
    ("", T.UNRECOGNIZED, None),
    ("   ", T.UNRECOGNIZED, None),
    ("😍", T.UNRECOGNIZED, None),
    ("Loved it, thanks", T.UNRECOGNIZED, None),
    ("STARTING tomorrow?", T.UNRECOGNIZED, None),
]


@pytest.mark.parametrize(("body", "expected", "keyword"), CASES)
def test_classification_table(body: str, expected: T, keyword: str | None) -> None:
    result = classify(body, custom_keywords=CUSTOM)
    assert (result.message_type, result.keyword) == (expected, keyword)


def test_the_table_has_at_least_sixty_cases_covering_all_seven_types() -> None:
    assert len(CASES) >= 60
    assert {expected for _, expected, _ in CASES} == set(T)


def test_stop_word_outside_us_is_not_an_opt_out_but_the_keyword_is() -> None:
    assert classify("please stop", us_recipient=False).message_type == T.UNRECOGNIZED
    assert classify("STOP", us_recipient=False).message_type == T.UNSUBSCRIBE


def test_company_keywords_never_shadow_the_standard_ones() -> None:
    own = {"STOP": CustomKeyword(reply="no"), "HELP": CustomKeyword(reply="no")}
    assert classify("stop", custom_keywords=own).message_type == T.UNSUBSCRIBE
    assert classify("help", custom_keywords=own).message_type == T.HELP


def test_without_company_keywords_a_custom_word_is_a_conversation() -> None:
    assert classify("JOIN").message_type == T.UNRECOGNIZED


def test_a_matched_company_keyword_finds_its_settings() -> None:
    result = classify("vip club!", custom_keywords=CUSTOM)
    assert find_custom_keyword(CUSTOM, result.keyword) is CUSTOM["VIP Club"]
    assert find_custom_keyword(CUSTOM, "NOPE") is None
