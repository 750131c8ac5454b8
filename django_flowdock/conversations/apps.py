from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "django_flowdock.conversations"
    label = "flowdock_conversations"
    verbose_name = _("Flowdock conversations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_flowdock.conversations.identity import remember_posted_thread
        from django_flowdock.signals import message_sent

        message_sent.connect(remember_posted_thread, dispatch_uid="flowdock-conversations-sent")
