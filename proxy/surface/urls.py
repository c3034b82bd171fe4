from django.urls import path

from proxy.surface.audio import SpeechView, TranscriptionsView, TranslationsView
from proxy.surface.images import ImageGenerationsView
from proxy.surface.moderations import ModerationsView

surface_urlpatterns = [
    path("moderations", ModerationsView.as_view(), name="moderations"),
    path("images/generations", ImageGenerationsView.as_view(), name="images-generations"),
    path("audio/speech", SpeechView.as_view(), name="audio-speech"),
    path("audio/transcriptions", TranscriptionsView.as_view(), name="audio-transcriptions"),
    path("audio/translations", TranslationsView.as_view(), name="audio-translations"),
]
