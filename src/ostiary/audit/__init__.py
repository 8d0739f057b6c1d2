"""The tamper-evident audit trail: hash-chained events."""
