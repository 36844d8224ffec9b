from django.apps import AppConfig


class MindSettlerConfig(AppConfig):
    name = "mindsettler"
    verbose_name = "MindSettler"

    def ready(self) -> None:
        from mindsettler import checks  # noqa: F401 - registers the deploy checks
