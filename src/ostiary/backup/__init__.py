"""Backup and restore of a whole installation (``ostiary backup`` / ``ostiary restore``).

A backup is a gzip tar: ``manifest.json`` (format version, Alembic revision, tables with
row counts and the SHA-256 of each part, whether the secret key is in it) and one JSON-lines
file per table, all read in one transaction. Values are encoded by column type, so a backup
from SQLite restores into PostgreSQL and back. See docs/backup.md.
"""
