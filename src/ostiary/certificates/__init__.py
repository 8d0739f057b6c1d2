"""X.509 client certificates of technical users: sub-account CAs, pinned and mapped certificates."""
