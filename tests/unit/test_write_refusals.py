"""Which write errors are the data's (set the record aside) and which the store's (retry the batch),
and the poison check projectors and deciders share."""

from __future__ import annotations

import pytest
import redis
from clickhouse_driver.errors import NetworkError, ServerException

from config.settings import ClickHouseSettings, RedisSettings
from projections.clickhouse import ClickHouseSink
from projections.redis_store import RedisSink
from streams.checks import event_problem

WRONGTYPE = ("Error running script (call to f_6c36): @user_script:5: WRONGTYPE Operation against a key "
             "holding the wrong kind of value")


@pytest.mark.parametrize(("exc", "for_good"), [
    (ServerException("Cannot parse input", code=27), True),
    (ServerException("Type mismatch", code=53), True),
    (ServerException("Database t_x doesn't exist", code=81), False),  # not migrated yet: wait for it
    (ServerException("Too many parts", code=252), False),
    (NetworkError("Connection refused"), False),
    (OverflowError("int too big to convert"), True),  # the driver could not encode a value
])
def test_clickhouse_data_errors_are_refusals_outages_are_not(exc: Exception, for_good: bool) -> None:
    assert ClickHouseSink(ClickHouseSettings()).refused_for_good(exc) is for_good


@pytest.mark.parametrize(("exc", "for_good"), [
    (redis.ResponseError(WRONGTYPE), True),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), True),
    (redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), False),
    (redis.ResponseError("BUSY Redis is busy running a script."), False),
    (redis.ConnectionError("Error 111 connecting"), False),
    (redis.TimeoutError("Timeout reading"), False),
])
def test_redis_error_replies_about_data_are_refusals_outages_are_not(exc: Exception, for_good: bool) -> None:
    sink = RedisSink(RedisSettings(url="redis://127.0.0.1:1/0"), 10)
    try:
        assert sink.refused_for_good(exc) is for_good
    finally:
        sink.close()


def test_the_shared_poison_check_names_the_problem() -> None:
    good = {"event_type": "InboundReceived", "event_id": "e1", "company_id": "acme",
            "profile_key": "acme:+14155550100"}
    assert event_problem("InboundReceived", good) == ""
    assert "event_type" in event_problem("ConsentChanged", good)
    assert "event_id is empty" in event_problem("InboundReceived", {**good, "event_id": ""})
    assert "not of company 'acme'" in event_problem(
        "InboundReceived", {**good, "profile_key": "globex:+14155550100"})
