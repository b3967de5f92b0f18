"""Ingestors: each channel's edge, turning what arrives into ticket events on Kafka."""
