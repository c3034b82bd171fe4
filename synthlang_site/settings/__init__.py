"""Settings for SynthLang Proxy, read from the environment.

DESIGN.md's table of variables is the contract. The embedded default (no environment
at all) is SQLite, a local-memory cache, eager Celery and the offline ``fake``
provider; production points DATABASE_URL and REDIS_URL at shared services.

One module per subject: base (DEBUG, secrets, serving), database, sign_in, services (Redis,
Celery, Channels), proxy, billing, operations. A module that needs another's value imports
it from that module by name, so the order of the lines below changes nothing.
"""

from synthlang_site.settings.base import *  # noqa: F403
from synthlang_site.settings.billing import *  # noqa: F403
from synthlang_site.settings.database import *  # noqa: F403
from synthlang_site.settings.operations import *  # noqa: F403
from synthlang_site.settings.proxy import *  # noqa: F403
from synthlang_site.settings.services import *  # noqa: F403
from synthlang_site.settings.sign_in import *  # noqa: F403
