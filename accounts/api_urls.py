from django.urls import path

from accounts import api

urlpatterns = [
    path("keys/", api.ApiKeyListCreateView.as_view(), name="api-keys"),
    path("keys/<int:key_id>/", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("keys/<int:key_id>/revoke/", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("members/", api.MemberListView.as_view(), name="api-members"),
    path("docs/", api.ApiDocsView.as_view(), name="api-docs"),
]
