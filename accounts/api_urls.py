from django.urls import path

from accounts import api, api_platform

urlpatterns = [
    path("keys/", api.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("keys/<int:key_id>/", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("keys/<int:key_id>/revoke/", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("keys/<int:key_id>/rotate/", api.ApiKeyRotateView.as_view(), name="api-key-rotate"),
    path("members/", api.MemberListView.as_view(), name="api-members"),
    path("members/<str:username>/", api.MemberDetailView.as_view(), name="api-member-detail"),
    path("provider-keys/", api_platform.ProviderKeyListView.as_view(), name="api-provider-keys"),
    path(
        "provider-keys/<int:credential_id>/",
        api_platform.ProviderKeyDetailView.as_view(),
        name="api-provider-key-detail",
    ),
    path("organization/", api_platform.OrganizationCurrentView.as_view(), name="api-organization"),
    path("organizations/", api_platform.OrganizationListView.as_view(), name="api-organizations"),
    path(
        "organizations/<slug:slug>/",
        api_platform.OrganizationDetailView.as_view(),
        name="api-organization-detail",
    ),
    path("docs/", api.ApiDocsView.as_view(), name="api-docs"),
]
