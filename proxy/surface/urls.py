from django.urls import path

from proxy.surface.images import ImageGenerationsView
from proxy.surface.moderations import ModerationsView

surface_urlpatterns = [
    path("moderations", ModerationsView.as_view(), name="moderations"),
    path("images/generations", ImageGenerationsView.as_view(), name="images-generations"),
]
