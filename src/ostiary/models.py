"""Imports every domain's tables so ``Base.metadata`` is complete (for Alembic)."""

from ostiary.access import models as access_models
from ostiary.audit import models as audit_models
from ostiary.certificates import models as certificate_models
from ostiary.credentials import models as credential_models
from ostiary.db import Base
from ostiary.gate import models as gate_models
from ostiary.groups import models as group_models
from ostiary.identity import models as identity_models
from ostiary.mail import models as mail_models
from ostiary.oauth import models as oauth_models
from ostiary.reminders import models as reminder_models
from ostiary.runtime import models as runtime_models
from ostiary.scheduler import models as scheduler_models
from ostiary.scim import models as scim_models
from ostiary.tenancy import models as tenancy_models

__all__ = [
    "Base",
    "access_models",
    "audit_models",
    "certificate_models",
    "credential_models",
    "gate_models",
    "group_models",
    "identity_models",
    "mail_models",
    "oauth_models",
    "reminder_models",
    "runtime_models",
    "scheduler_models",
    "scim_models",
    "tenancy_models",
]
