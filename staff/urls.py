from django.urls import path

from staff import views

app_name = "staff"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("calendar/", views.calendar, name="calendar"),
    path("calendar/feed/", views.calendar_feed, name="calendar_feed"),
    path("calendar/publish/", views.calendar_publish, name="calendar_publish"),
    path("calendar/subscription/new/", views.calendar_app_new, name="calendar_app_new"),
    path("calendar/subscription/stop/", views.calendar_app_stop, name="calendar_app_stop"),
    # Outside sign-in: the token is the credential (a calendar app reads it). Logs redact it.
    path("calendar/<str:token>.ics", views.calendar_app_feed, name="calendar_app_feed"),
    path("bookings/", views.booking_list, name="booking_list"),
    path("bookings/export.csv", views.booking_export, name="booking_export"),
    path("bookings/new/", views.booking_new, name="booking_new"),
    path("bookings/<int:pk>/", views.booking_detail, name="booking_detail"),
    path("bookings/<int:pk>/approve/", views.booking_approve, name="booking_approve"),
    path("bookings/<int:pk>/reject/", views.booking_reject, name="booking_reject"),
    path("bookings/<int:pk>/complete/", views.booking_complete, name="booking_complete"),
    path("bookings/<int:pk>/no-show/", views.booking_no_show, name="booking_no_show"),
    path("bookings/<int:pk>/cancel/", views.booking_cancel, name="booking_cancel"),
    path("bookings/<int:pk>/move/", views.booking_move, name="booking_move"),
    path("bookings/<int:pk>/drop/", views.booking_drop, name="booking_drop"),
    path("bookings/<int:pk>/resend/", views.booking_resend, name="booking_resend"),
    path("bookings/<int:pk>/meeting-link/", views.booking_meeting_url, name="booking_meeting_url"),
    path(
        "bookings/<int:pk>/payments/<int:payment_id>/settle/",
        views.booking_payment_settle,
        name="booking_payment_settle",
    ),
    path("availability/", views.availability_index, name="availability_index"),
    path("availability/<int:counsellor_id>/", views.availability, name="availability"),
    path("availability/<int:counsellor_id>/hours/", views.availability_hours_add, name="availability_hours_add"),
    path(
        "availability/<int:counsellor_id>/hours/<int:hours_id>/delete/",
        views.availability_hours_delete,
        name="availability_hours_delete",
    ),
    path("availability/<int:counsellor_id>/generate/", views.availability_generate, name="availability_generate"),
    path("availability/<int:counsellor_id>/slots/", views.availability_slot_add, name="availability_slot_add"),
    path(
        "availability/<int:counsellor_id>/slots/<int:slot_id>/delete/",
        views.availability_slot_delete,
        name="availability_slot_delete",
    ),
    path("availability/<int:counsellor_id>/blocked/", views.availability_blocked_add, name="availability_blocked_add"),
    path(
        "availability/<int:counsellor_id>/blocked/<int:period_id>/delete/",
        views.availability_blocked_delete,
        name="availability_blocked_delete",
    ),
    path("availability/<int:counsellor_id>/room/", views.availability_room, name="availability_room"),
    path("profile/", views.profile_index, name="profile"),
    path("profile/<int:counsellor_id>/", views.profile_edit, name="profile_edit"),
    path("team/", views.team, name="team"),
    path("team/invite/", views.team_invite, name="team_invite"),
    path("team/<int:user_id>/reinvite/", views.team_reinvite, name="team_reinvite"),
    path(
        "team/<int:user_id>/counsellor-profile/",
        views.team_counsellor_profile,
        name="team_counsellor_profile",
    ),
    path("team/<int:user_id>/deactivate/", views.team_deactivate, name="team_deactivate"),
    path("team/<int:user_id>/reactivate/", views.team_reactivate, name="team_reactivate"),
    path(
        "team/<int:user_id>/second-factor/reset/",
        views.team_second_factor_reset,
        name="team_second_factor_reset",
    ),
    path("team/<int:user_id>/calendar/stop/", views.team_calendar_stop, name="team_calendar_stop"),
    path("reports/", views.report, name="report"),
    path("reports/export.csv", views.report_export, name="report_export"),
    path("clinic/", views.clinic_settings, name="clinic"),
    path("clinic/session-types/new/", views.session_type_edit, name="session_type_new"),
    path("clinic/session-types/<int:pk>/", views.session_type_edit, name="session_type_edit"),
]
