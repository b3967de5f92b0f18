"""Event-driven ticket routing engine for support centres, on Apache Kafka."""

__version__ = "0.1.0"
