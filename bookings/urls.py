from django.urls import path

from bookings import payment_views, views, wizard

app_name = "bookings"

urlpatterns = [
    path("", views.home, name="home"),
    path("privacy/", views.privacy, name="privacy"),
    path("policies/", views.policies, name="policies"),
    path("book/", wizard.wizard, name="wizard"),
    path("verify/<str:token>/", views.verify, name="verify"),
    path("verify/<str:token>/resend/", views.verify_resend, name="verify_resend"),
    path("status/", views.status, name="status"),
    path("bookings/<str:token>/", views.booking_page, name="booking_page"),
    path("bookings/<str:token>/cancel/", views.booking_cancel_request, name="booking_cancel_request"),
    path("cancel/<str:token>/", views.cancel_confirm, name="cancel_confirm"),
    # Payments (bookings/payment_views.py).
    path("bookings/<str:token>/pay/", payment_views.pay, name="pay"),
    path("bookings/<str:token>/pay/<int:payment_id>/", payment_views.checkout, name="pay_checkout"),
    path("bookings/<str:token>/pay/<int:payment_id>/return/", payment_views.payment_return, name="pay_return"),
    path("bookings/<str:token>/session.ics", payment_views.booking_calendar, name="booking_ics"),
    path("payments/razorpay/webhook/", payment_views.razorpay_webhook, name="razorpay_webhook"),
]
