"""Automated replies: STOP confirmation, HELP/INFO text, START welcome, company keyword replies.

A reply is a ``SendRequested`` of kind ``auto_reply``: transactional, so the sender applies no consent or
quiet-hours gate. Its id derives from the message it answers, so re-processing asks only once. For a
load-test company the request is recorded with ``suppressed=True`` and never reaches a vendor.
"""

from __future__ import annotations

from config.companies import Company
from streams.events import Event, SendRequested, event_id_for

__all__ = ["AUTO_REPLY", "auto_reply", "render_reply"]

AUTO_REPLY = "auto_reply"


def render_reply(template: str, company: Company) -> str:
    """Fill ``{program}``, ``{help_contact}`` and ``{frequency}``; other braces are left as written."""
    return (
        template.replace("{program}", company.program_name)
        .replace("{help_contact}", company.help_contact)
        .replace("{frequency}", company.message_frequency)
    )


def auto_reply(
    cause: Event, company: Company, template: str, from_number: str, stage_times: dict[str, int]
) -> SendRequested:
    """The reply to ``cause`` (an inbound message or a consent request), sent from ``from_number``."""
    return SendRequested(
        event_id=event_id_for("SendRequested", AUTO_REPLY, cause.event_id),
        company_id=cause.company_id,
        profile_key=cause.profile_key,
        occurred_at=cause.occurred_at,
        received_at=cause.received_at,
        causation_id=cause.event_id,
        kind=AUTO_REPLY,
        body=render_reply(template, company),
        from_number=from_number,
        suppressed=company.load_test,
        stage_times=stage_times,
    )
