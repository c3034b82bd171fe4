"""The accounts admin: organizations, members, limits, keys, provider keys and the audit log.

Every page is tenant-scoped by ``OrganizationScopedAdmin``, and every write goes through
``accounts.services`` so it is audited under the acting user, exactly like the same
change made through the API or a command. One module per subject; importing this package
(Django's admin autodiscovery does) registers every page.
"""

from accounts.admin import audit_and_users, keys, members, organizations  # noqa: F401 - registers
from accounts.admin.forms_common import COMPRESSION_LEVEL_FIGURES

__all__ = ["COMPRESSION_LEVEL_FIGURES"]
