"""Tells drf-spectacular how the management API authenticates, for the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sk-syn-...",
            "description": "An API key, as 'Authorization: Bearer sk-syn-...' "
            "(the 'x-api-key' header is accepted too).",
        }
