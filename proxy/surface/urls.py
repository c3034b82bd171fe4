from django.urls import path

from proxy.surface.audio import SpeechView, TranscriptionsView, TranslationsView
from proxy.surface.batches import BatchCancelView, BatchDetailView, BatchesView
from proxy.surface.files import FileContentView, FileDetailView, FilesView
from proxy.surface.images import ImageGenerationsView
from proxy.surface.moderations import ModerationsView

surface_urlpatterns = [
    path("moderations", ModerationsView.as_view(), name="moderations"),
    path("images/generations", ImageGenerationsView.as_view(), name="images-generations"),
    path("audio/speech", SpeechView.as_view(), name="audio-speech"),
    path("audio/transcriptions", TranscriptionsView.as_view(), name="audio-transcriptions"),
    path("audio/translations", TranslationsView.as_view(), name="audio-translations"),
    path("files", FilesView.as_view(), name="files"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", FileContentView.as_view(), name="file-content"),
    path("batches", BatchesView.as_view(), name="batches"),
    path("batches/<str:batch_id>", BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/cancel", BatchCancelView.as_view(), name="batch-cancel"),
]
