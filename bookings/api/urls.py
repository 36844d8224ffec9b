from django.urls import path, re_path

from bookings.api import views

app_name = "api"

urlpatterns = [
    path("bookings/<str:acknowledgement_id>", views.booking_status, name="booking_status"),
    path("availability", views.availability, name="availability"),
    path("session-types", views.session_types, name="session_types"),
    path("openapi.json", views.openapi, name="openapi"),
    # Anything else under /api/v1/ is a problem+json 404, not the HTML page.
    re_path(r"^(?P<path>.*)$", views.unknown_path, name="unknown"),
]
