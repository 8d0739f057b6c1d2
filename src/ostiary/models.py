"""Imports every domain's tables so ``Base.metadata`` is complete (for Alembic)."""

from ostiary.db import Base
from ostiary.identity import models as identity_models
from ostiary.mail import models as mail_models

__all__ = ["Base", "identity_models", "mail_models"]
