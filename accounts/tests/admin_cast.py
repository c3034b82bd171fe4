"""What the admin tests share: the provider keys of the cast's rows and helpers to open an
admin page as someone."""

from __future__ import annotations

import re

from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.models import (
    ApiKey,
)

PLAINTEXT_KEY = re.compile(r"sk-syn-[A-Za-z0-9]{48}")
ORG_A_PROVIDER_KEY = "sk-org-a-provider-secret-AAAA1111"
ORG_B_PROVIDER_KEY = "sk-org-b-provider-secret-BBBB2222"
PLATFORM_PROVIDER_KEY = "sk-platform-provider-secret-PPPP3333"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def scoped_admins():
    return [
        model_admin
        for model_admin in admin.site._registry.values()
        if isinstance(model_admin, OrganizationScopedAdmin)
    ]


def rows_of(model_admin, organization):
    return model_admin.model._default_manager.filter(
        **{f"{model_admin.organization_field}__in": [organization.pk]}
    )


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(prefix=plaintext[len("sk-syn-") :][:8])
