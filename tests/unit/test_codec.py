"""The Avro codec: round trips, schema/model agreement, old writer schemas and poison input."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.avro import SCHEMA_DIR, avro_schema, record_models, render, schema_path
from streams.codec import MAGIC, AvroCodec, DecodeError, EncodeError, RawWebhookEncoder
from streams.events import EVENT_TYPES, ConsentChanged, InboundReceived, RawWebhook

CODEC = AvroCodec()
RAW_ENCODER = RawWebhookEncoder()

text = st.text(max_size=40)
millis = st.integers(min_value=0, max_value=2**62)


def test_schema_files_agree_with_models() -> None:
    # The .avsc files are generated from the models; regenerate with `python -m streams.avro`.
    for model in record_models():
        path = schema_path(model)
        assert path.exists(), f"missing {path.name}"
        assert path.read_text() == render(model), f"{path.name} differs from {model.__name__}"


def test_every_event_type_has_a_schema() -> None:
    names = {json.loads(p.read_text())["name"] for p in SCHEMA_DIR.glob("*.avsc")}
    assert set(EVENT_TYPES) | {"RawWebhook"} <= names


@given(
    event_id=text, company=text, phone=text, occurred=millis, received=millis, body=text,
    media=st.lists(text, max_size=3), keyword=st.none() | text, causation=st.none() | text,
)
def test_inbound_round_trip(event_id: str, company: str, phone: str, occurred: int, received: int,
                            body: str, media: list[str], keyword: str | None, causation: str | None) -> None:
    event = InboundReceived(
        event_id=event_id, company_id=company, profile_key=f"{company}:{phone}", occurred_at=occurred,
        received_at=received, causation_id=causation, vendor="twilio", vendor_message_id="SM1",
        to_number="+14155550100", body=body, media_urls=media, message_type="unrecognized", keyword=keyword,
    )
    assert CODEC.decode(CODEC.encode(event)) == event


@given(body=st.binary(max_size=2000), headers=st.dictionaries(text, text, max_size=4), received=millis)
def test_raw_webhook_round_trip(body: bytes, headers: dict[str, str], received: int) -> None:
    raw = RawWebhook(request_id="r", vendor="twilio", endpoint="inbound", url="https://x/y", method="POST",
                     content_type="application/x-www-form-urlencoded", headers=headers, body=body,
                     received_at=received, dedupe_key="k")
    assert CODEC.decode(CODEC.encode(raw)) == raw


def _generic_encoding(raw: RawWebhook) -> bytes:
    """What the codec writes for any other model: model_dump() through fastavro's generic writer."""
    schema, header = CODEC._writers[RawWebhook]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, raw.model_dump())
    return header + buf.getvalue()


unicode = st.text(max_size=300)
long_text = st.text(min_size=4000, max_size=5000)


@given(
    request_id=unicode, vendor=unicode, endpoint=unicode, url=unicode | long_text, content_type=unicode,
    headers=st.dictionaries(unicode, unicode | long_text, max_size=5),
    body=st.binary(max_size=300) | st.binary(min_size=4090, max_size=20_000),
    received=st.integers(min_value=-(2**63), max_value=2**63 - 1), dedupe_key=unicode,
)
def test_raw_webhook_fast_encoding_is_byte_identical_to_fastavro(
    request_id: str, vendor: str, endpoint: str, url: str, content_type: str, headers: dict[str, str],
    body: bytes, received: int, dedupe_key: str,
) -> None:
    # RawWebhook has an encoder of its own (the gateway's hot path): it must write exactly the bytes
    # the generic path writes, for lengths on either side of its table of encoded lengths too (and a
    # field added to RawWebhook but not to the fast encoder fails here).
    raw = RawWebhook(request_id=request_id, vendor=vendor, endpoint=endpoint, url=url, method="POST",
                     content_type=content_type, headers=headers, body=body, received_at=received,
                     dedupe_key=dedupe_key)
    assert CODEC.encode(raw) == _generic_encoding(raw)
    assert CODEC.decode(CODEC.encode(raw)) == raw
    # The gateway encodes from the field values, without the model: the same bytes.
    assert RAW_ENCODER.encode(**dict(raw)) == CODEC.encode(raw)


@pytest.mark.parametrize("received_at", [2**63, -(2**63) - 1])
def test_raw_webhook_time_outside_a_long_is_an_encode_error(received_at: int) -> None:
    raw = RawWebhook(request_id="r", vendor="twilio", endpoint="inbound", url="u", method="POST",
                     content_type="", headers={}, body=b"", received_at=received_at, dedupe_key="k")
    with pytest.raises(EncodeError, match="long"):
        CODEC.encode(raw)


def test_single_object_header() -> None:
    data = CODEC.encode(_consent())
    assert data[:2] == MAGIC == b"\xc3\x01"
    assert len(data) > 10


@given(st.binary(max_size=64))
def test_garbage_is_a_decode_error_never_a_crash(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except DecodeError as exc:
        assert exc.reason


def test_unknown_fingerprint_named() -> None:
    data = bytearray(CODEC.encode(_consent()))
    data[2:10] = b"\x00" * 8
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        CODEC.decode(bytes(data))


def test_truncated_body_named() -> None:
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        CODEC.decode(CODEC.encode(_consent())[:20])


def test_unknown_model_cannot_be_encoded() -> None:
    from pydantic import BaseModel

    class Stranger(BaseModel):
        x: int

    with pytest.raises(EncodeError):
        CODEC.encode(Stranger(x=1))


def test_reads_data_written_with_a_released_older_version(tmp_path: Path) -> None:
    # An older ConsentChanged lacked `method`; data written with it must still read, with the default.
    schema_dir = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schema_dir)
    old = avro_schema(ConsentChanged)
    old["fields"] = [f for f in old["fields"] if f["name"] != "method"]
    released = schema_dir / "released"
    released.mkdir(exist_ok=True)
    (released / "smsfold.events.ConsentChanged.v0.avsc").write_text(json.dumps(old))
    current = json.loads((schema_dir / "smsfold.events.ConsentChanged.avsc").read_text())
    for f in current["fields"]:
        if f["name"] == "method":
            f["default"] = "unknown"
    (schema_dir / "smsfold.events.ConsentChanged.avsc").write_text(json.dumps(current))
    codec = AvroCodec(schema_dir)

    import io

    import fastavro
    from fastavro.schema import parse_schema

    from streams.codec import _HEADER, schema_fingerprint

    parsed_old = parse_schema(old)
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, schema_fingerprint(parsed_old)))
    values = _consent().model_dump()
    del values["method"]
    fastavro.schemaless_writer(buf, parsed_old, values)
    decoded = codec.decode(buf.getvalue())
    assert isinstance(decoded, ConsentChanged)
    assert decoded.method == "unknown"
    assert decoded.status == "subscribed"
    assert codec.model_of(buf.getvalue()) is ConsentChanged  # what consumers filter on before decoding


def test_the_model_of_a_record_is_read_from_its_header() -> None:
    codec = AvroCodec()
    assert codec.model_of(codec.encode(_consent())) is ConsentChanged
    assert codec.model_of(b"garbage") is None
    assert codec.model_of(b"\xc3\x01" + b"\x00" * 8) is None  # an unknown fingerprint


def test_every_released_version_still_reads() -> None:
    # Every schema ever released stays on disk; each one must resolve against the current schema.
    released = SCHEMA_DIR / "released"
    for path in sorted(released.glob("*.avsc")) if released.is_dir() else []:
        from fastavro.schema import parse_schema

        from streams.codec import schema_fingerprint

        assert schema_fingerprint(parse_schema(json.loads(path.read_text()))) in CODEC.fingerprints


def _consent() -> ConsentChanged:
    return ConsentChanged(
        event_id="e1", company_id="acme", profile_key="acme:+14155551234", occurred_at=1, received_at=2,
        status="subscribed", previous_status="never_subscribed", source="keyword", method="sms_keyword:START",
        version=1,
    )
