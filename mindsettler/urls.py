from django.urls import include, path

from bookings import views as bookings_views
from mindsettler import views
from staff import login as staff_login
from staff import second_factor

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # The language switcher posts to /i18n/setlang/ (Django's set_language view, which
    # also answers a status lookup again in the new language).
    path("i18n/setlang/", bookings_views.language_set, name="set_language"),
    path("staff/", include("staff.urls")),
    # allauth's sign-in, answering 429 with Retry-After when it refuses for too many failures.
    path("accounts/login/", staff_login.login, name="account_login"),
    # A staff account's address is its sign-in and where its invitation and alerts go: set by
    # an administrator's invitation, not changed by its holder (allauth would offer to add,
    # remove and switch addresses here, unverified).
    path("accounts/email/", views.not_found, name="account_email"),
    # allauth's setup of the first authenticator app, only in a session that proved it reads
    # the account's email (staff/second_factor.py); otherwise an emailed link that does.
    path("accounts/2fa/totp/activate/", second_factor.activate_totp, name="mfa_activate_totp"),
    path("accounts/2fa/totp/activate/link/", second_factor.setup_link_send, name="staff_setup_link_send"),
    path("accounts/2fa/totp/activate/link/<str:token>/", second_factor.setup_link, name="staff_setup_link"),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("bookings.api.urls")),
    path("", include("bookings.urls")),
]

handler403 = "mindsettler.views.permission_denied"
handler404 = "mindsettler.views.not_found"
handler500 = "mindsettler.views.server_error"
# allauth's own rate limits (sign-in attempts per IP, password resets) answer through this.
handler429 = "mindsettler.views.too_many_requests"
