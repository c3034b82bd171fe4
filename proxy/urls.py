from django.urls import path

from proxy import views
from proxy.adapters import responses
from proxy.cache_views import cache_urlpatterns
from proxy.messages_views import messages_urlpatterns
from proxy.surface.urls import surface_urlpatterns
from proxy.synthlang_views import synthlang_urlpatterns

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("completions", views.CompletionsView.as_view(), name="completions"),
    path("embeddings", views.EmbeddingsView.as_view(), name="embeddings"),
    path("responses", responses.ResponsesView.as_view(), name="responses"),
    path(
        "responses/<str:response_id>",
        responses.ResponseDetailView.as_view(),
        name="response-detail",
    ),
    path(
        "responses/<str:response_id>/input_items",
        responses.ResponseInputItemsView.as_view(),
        name="response-input-items",
    ),
    path(
        "responses/<str:response_id>/cancel",
        responses.ResponseCancelView.as_view(),
        name="response-cancel",
    ),
    path("models", views.ModelsView.as_view(), name="models"),
    # Model ids may contain slashes (OpenRouter's "openai/gpt-4o").
    path("models/<path:model_id>", views.ModelDetailView.as_view(), name="model-detail"),
]

urlpatterns += synthlang_urlpatterns
urlpatterns += cache_urlpatterns
urlpatterns += messages_urlpatterns
urlpatterns += surface_urlpatterns
