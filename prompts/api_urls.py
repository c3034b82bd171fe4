from django.urls import path

from prompts import api

urlpatterns = [
    path("prompts/", api.PromptListCreateView.as_view(), name="api-prompts"),
    path("prompts/<str:ref>/", api.PromptDetailView.as_view(), name="api-prompt-detail"),
    path(
        "prompts/<str:ref>/versions/",
        api.PromptVersionListCreateView.as_view(),
        name="api-prompt-versions",
    ),
    path(
        "prompts/<str:ref>/versions/<int:number>/",
        api.PromptVersionDetailView.as_view(),
        name="api-prompt-version-detail",
    ),
    path(
        "prompts/<str:ref>/labels/<str:label>/",
        api.PromptLabelView.as_view(),
        name="api-prompt-label",
    ),
    path("prompts/<str:ref>/diff/", api.PromptDiffView.as_view(), name="api-prompt-diff"),
    path("prompts/<str:ref>/usage/", api.PromptUsageView.as_view(), name="api-prompt-usage"),
]
