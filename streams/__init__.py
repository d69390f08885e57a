"""The event log: event models, the Avro codec, the topic registry and the producer."""
