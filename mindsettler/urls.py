from django.contrib import admin
from django.urls import include, path

from mindsettler import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("staff/", include("staff.urls")),
    path("accounts/", include("allauth.urls")),
    path("django-admin/", admin.site.urls),
    path("api/v1/", include("bookings.api.urls")),
    path("", include("bookings.urls")),
]

handler404 = "mindsettler.views.not_found"
handler500 = "mindsettler.views.server_error"
