"""Sub-account export and import: a sub-account's configuration as one versioned JSON
document (``models``), built by ``export``, compared with a sub-account by ``plan`` and
applied through the ordinary, audited services by ``service`` (see docs/transfer.md)."""
