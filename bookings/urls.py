from django.urls import path

from bookings import views, wizard

app_name = "bookings"

urlpatterns = [
    path("", views.home, name="home"),
    path("privacy/", views.privacy, name="privacy"),
    path("policies/", views.policies, name="policies"),
    path("book/", wizard.wizard, name="wizard"),
    path("verify/<str:token>/", views.verify, name="verify"),
    path("status/", views.status, name="status"),
    path("bookings/<str:token>/", views.booking_page, name="booking_page"),
    path("cancel/<str:token>/", views.cancel_confirm, name="cancel_confirm"),
]
