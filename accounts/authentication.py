"""DRF authentication for the management API with the same API keys as the proxy."""

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import User
from accounts.selectors import ApiKeyMissing, principal_for_key, raw_key_from_headers
from common.errors import DomainError


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            raw_key = raw_key_from_headers(request.headers)
        except ApiKeyMissing:
            return None  # let the session authenticator try
        try:
            principal = principal_for_key(raw_key)
        except DomainError as error:
            raise AuthenticationFailed(error.message) from None
        user = User.objects.get(pk=principal.user_id)
        return user, principal

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
