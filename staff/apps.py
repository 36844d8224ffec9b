from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = "Staff portal"

    def ready(self) -> None:
        from allauth.account.signals import password_reset
        from allauth.mfa.signals import authenticator_added, authenticator_removed

        from staff.middleware import forget_second_factor, setup_done
        from staff.services import address_proved_by_reset, calendar_subscription_stop_on_reset

        authenticator_removed.connect(forget_second_factor, dispatch_uid="staff_forget_second_factor")
        authenticator_added.connect(setup_done, dispatch_uid="staff_setup_done")
        password_reset.connect(address_proved_by_reset, dispatch_uid="staff_address_proved_by_reset")
        password_reset.connect(calendar_subscription_stop_on_reset, dispatch_uid="staff_calendar_stop_on_reset")
