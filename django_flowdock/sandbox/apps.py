from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "django_flowdock.sandbox"
    label = "flowdock_sandbox"
    verbose_name = "Flowdock sandbox"
    default_auto_field = "django.db.models.BigAutoField"
