"""DRF authentication for the management API with the same API keys as the proxy."""

import logging

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts import keys
from accounts.models import User
from accounts.selectors import ApiKeyMissing, principal_for_key, raw_key_from_headers
from common.errors import DomainError

logger = logging.getLogger(__name__)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            raw_key = raw_key_from_headers(request.headers)
        except ApiKeyMissing:
            return None  # let the session authenticator try
        try:
            principal = principal_for_key(raw_key)
        except DomainError as error:
            # Only the lookup prefix: enough to trace a key, useless to an attacker.
            logger.info(
                "management API key rejected: %s",
                error.message,
                extra={"key_prefix": keys.lookup_prefix(raw_key) or "-"},
            )
            raise AuthenticationFailed(error.message) from None
        user = User.objects.get(pk=principal.user_id)
        return user, principal

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
