"""The real URLs plus the ceiling views, measured in the same run as the real endpoints."""

from __future__ import annotations

from django.urls import path

from benchmarks import views
from mindsettler.urls import handler404, handler500
from mindsettler.urls import urlpatterns as real_urlpatterns

urlpatterns = [
    path("__bench__/ceiling/trivial", views.ceiling_trivial),
    path("__bench__/ceiling/query/<str:ack_id>", views.ceiling_query),
    path("__bench__/ceiling/page/<str:ack_id>", views.ceiling_page),
    *real_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
