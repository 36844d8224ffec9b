from django.urls import path

from bookings import payment_views, privacy_views, reschedule_views, views, waitlist_views, wizard

app_name = "bookings"

urlpatterns = [
    path("", views.home, name="home"),
    path("privacy/", views.privacy, name="privacy"),
    path("policies/", views.policies, name="policies"),
    path("counsellors/", views.counsellors, name="counsellors"),
    path("counsellors/<slug:slug>/", views.counsellor_profile, name="counsellor"),
    path("book/", wizard.wizard, name="wizard"),
    path("verify/<str:token>/", views.verify, name="verify"),
    path("verify/<str:token>/resend/", views.verify_resend, name="verify_resend"),
    path("status/", views.status, name="status"),
    path("status/sent/", views.status_sent, name="status_sent"),
    path("bookings/<str:token>/", views.booking_page, name="booking_page"),
    path("bookings/<str:token>/cancel/", views.booking_cancel_request, name="booking_cancel_request"),
    path("cancel/<str:token>/", views.cancel_confirm, name="cancel_confirm"),
    # Payments (bookings/payment_views.py).
    path("bookings/<str:token>/pay/", payment_views.pay, name="pay"),
    path("bookings/<str:token>/pay/<int:payment_id>/", payment_views.checkout, name="pay_checkout"),
    path("bookings/<str:token>/pay/<int:payment_id>/return/", payment_views.payment_return, name="pay_return"),
    path("bookings/<str:token>/session.ics", payment_views.booking_calendar, name="booking_ics"),
    # A provider's checkout page whose script can read it: no booking link in its address.
    path("pay/<int:payment_id>/", payment_views.payment_window, name="payment_window"),
    path("pay/<int:payment_id>/return/", payment_views.payment_window_return, name="payment_window_return"),
    path("pay/<int:payment_id>/back/", payment_views.payment_window_back, name="payment_window_back"),
    path("payments/razorpay/webhook/", payment_views.razorpay_webhook, name="razorpay_webhook"),
    # Privacy requests (bookings/privacy_views.py).
    path("bookings/<str:token>/privacy/erase/", privacy_views.erase_request, name="privacy_erase_request"),
    path("bookings/<str:token>/privacy/export/", privacy_views.export_request, name="privacy_export_request"),
    path("privacy/erase/<str:token>/", privacy_views.erase, name="privacy_erase"),
    path("privacy/export/<str:token>/", privacy_views.export, name="privacy_export"),
    # Moving a session (bookings/reschedule_views.py).
    path("bookings/<str:token>/reschedule/", reschedule_views.reschedule, name="reschedule"),
    path("reschedule/<str:token>/", reschedule_views.reschedule_confirm, name="reschedule_confirm"),
    # The waitlist (bookings/waitlist_views.py).
    path("waitlist/", waitlist_views.waitlist_join, name="waitlist_join"),
    path("waitlist/sent/", waitlist_views.waitlist_sent, name="waitlist_sent"),
    path("waitlist/verify/<str:token>/", waitlist_views.waitlist_verify, name="waitlist_verify"),
    path("waitlist/leave/<str:token>/", waitlist_views.waitlist_leave, name="waitlist_leave"),
]
