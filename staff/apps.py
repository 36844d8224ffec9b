from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = "Staff portal"

    def ready(self) -> None:
        from allauth.mfa.signals import authenticator_removed

        from staff.middleware import forget_second_factor

        authenticator_removed.connect(forget_second_factor, dispatch_uid="staff_forget_second_factor")
