"""Why a backup or a restore was refused; the CLI prints the detail and exits 1."""

from __future__ import annotations

from ostiary.errors import OstiaryError


class BackupError(OstiaryError):
    """A backup could not be made, or a file cannot be restored (corrupt, foreign, from
    another revision, another secret key) or the target is not empty."""

    code = "backup_refused"
