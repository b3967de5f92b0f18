"""The HTTP face of the engine: chat, phone entry, ticket activity and ticket queries."""
