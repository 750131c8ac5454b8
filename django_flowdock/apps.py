import logging
import sys

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("django_flowdock")


class FlowdockConfig(AppConfig):
    name = "django_flowdock"
    verbose_name = _("Flowdock")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from django_flowdock import checks
        from django_flowdock.api.sources import source_refused
        from django_flowdock.delivery.immediate import deliver_on_start
        from django_flowdock.delivery.outbox import forget_transactions
        from django_flowdock.signals import message_failed
        from django_flowdock.threads.capture import connect_receivers

        checks.register()
        connect_receivers()
        message_failed.connect(source_refused, dispatch_uid="django_flowdock.source_refused")
        request_started.connect(forget_transactions, dispatch_uid="django_flowdock.transactions")
        # uWSGI never runs the system checks, so its process says it here.
        for problem in checks.check_uwsgi_threads():
            logger.error("%s", problem)
        deliver_on_start()
        if sys.argv[1:2] == ["test"]:
            from django_flowdock.testing.runner import adopt_default_test_runner

            adopt_default_test_runner()
