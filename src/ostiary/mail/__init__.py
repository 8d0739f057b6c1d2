"""Outgoing mail: a durable outbox and the transports that deliver it."""
