"""The worker's stage metrics (no I/O): what the normalizer, decider and projectors record."""

from __future__ import annotations

from prometheus_client import generate_latest

from agents.metrics import PipelineMetrics
from streams.events import InboundReceived, SendRequested


def _inbound(message_type: str, received_at: int) -> InboundReceived:
    return InboundReceived(
        event_id="e", company_id="acme", profile_key="acme:+14155551234", occurred_at=received_at,
        received_at=received_at, vendor="twilio", vendor_message_id="SM1", to_number="+14155550100",
        body="STOP", message_type=message_type,
    )


def test_stage_names_durations_and_latency_per_message_type() -> None:
    metrics = PipelineMetrics()
    metrics.observe_durations({"validated": 0.0002, "hydrated": 0.0001})
    metrics.observe_latency(1_000, {"validated": 1_040, "classified": 1_050}, "unsubscribe")
    metrics.stage_failed("hydration")
    text = generate_latest(metrics.registry).decode()
    assert 'smsfold_stage_records_total{outcome="ok",stage="validation"} 1.0' in text
    assert 'smsfold_stage_records_total{outcome="error",stage="hydration"} 1.0' in text
    assert 'smsfold_stage_duration_seconds_count{stage="hydration"} 1.0' in text
    assert 'smsfold_stage_latency_seconds_sum{message_type="unsubscribe",stage="classification"} 0.05' in text
    # 40 ms falls in the 0.05 s bucket, not in the 0.025 s one.
    bucket = ('smsfold_stage_latency_seconds_bucket{{le="{}",message_type="unsubscribe",'
              'stage="validation"}} {}')
    assert bucket.format("0.025", "0.0") in text and bucket.format("0.05", "1.0") in text


def test_projectors_count_only_inbound_messages() -> None:
    metrics = PipelineMetrics()
    reply = SendRequested(event_id="r", company_id="acme", profile_key="acme:+14155551234", occurred_at=0,
                          received_at=0, kind="auto_reply", body="bye")
    events = [_inbound("help", 1_000), reply, _inbound("help", 2_000)]
    metrics.observe_projected("event_log", [e.model_dump() for e in events])
    metrics.observe_stage("timeline", [(1_000, "help")], now_ms=1_500)
    text = generate_latest(metrics.registry).decode()
    assert 'smsfold_stage_records_total{outcome="ok",stage="event_log"} 2.0' in text
    assert 'smsfold_stage_latency_seconds_sum{message_type="help",stage="timeline"} 0.5' in text


def test_two_apps_in_one_process_do_not_share_a_registry() -> None:
    first, second = PipelineMetrics(), PipelineMetrics()
    first.stage_failed("validation")
    assert "error" not in generate_latest(second.registry).decode().split("smsfold_stage_records_total")[-1]
