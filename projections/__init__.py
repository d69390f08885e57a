"""Read models folded from ``sms.events``: ClickHouse (migrations, batched writers, queries) and Redis."""
