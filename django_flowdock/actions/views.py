"""The endpoint Flowdock posts to when a chat user presses an UpdateAction."""

from __future__ import annotations

import email.message
from typing import Any, cast

from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import router, transaction
from rest_framework import status
from rest_framework.exceptions import (
    APIException,
    NotFound,
    PermissionDenied,
    UnsupportedMediaType,
)
from rest_framework.exceptions import ValidationError as APIValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from django_flowdock.actions.authentication import (
    FlowdockIdentity,
    FlowdockTokenAuthentication,
    agent_from,
    thread_applications,
)
from django_flowdock.actions.declarations import FlowdockAction, declared_actions, unsign_target
from django_flowdock.mixins import FlowdockThread
from django_flowdock.models import OAuthApplication
from django_flowdock.signals import action_performed, send_robust

UTF_8 = ("utf-8", "utf8")

#: The rate of :class:`FlowdockActionThrottle` unless ``REST_FRAMEWORK``'s
#: ``DEFAULT_THROTTLE_RATES`` names one for its scope.
DEFAULT_ACTION_RATE = "120/minute"


class FlowdockActionThrottle(SimpleRateThrottle):
    """Action requests per Flowdock user (per client address for a request that names
    none), scope ``"flowdock_actions"``: ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``
    sets its rate (``None`` turns it off), else :data:`DEFAULT_ACTION_RATE`. Counts
    are kept in Django's default cache, like every DRF throttle's."""

    scope = "flowdock_actions"

    def get_rate(self) -> str | None:
        # Read on each request, not bound at import like SimpleRateThrottle.THROTTLE_RATES,
        # so that a changed REST_FRAMEWORK setting (override_settings) takes effect.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return cast("str | None", rates.get(self.scope, DEFAULT_ACTION_RATE))

    def get_cache_key(self, request: Request, view: APIView) -> str:
        identity = request.auth
        if isinstance(identity, FlowdockIdentity):
            ident = f"user:{identity.flowdock_user_id}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ActionUnavailable(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This action is not available on the object any more."
    default_code = "action_unavailable"


class ActionView(APIView):
    """Runs the action named by the signed URL as the Flowdock user's linked Django user.

    Answers, in the order they are checked: 405 for a method other than POST; 404 for
    an altered URL or an undeclared action; 415 for a body that is not
    ``application/json`` in UTF-8; 401 for a missing, malformed, stale or tampered
    token (none of these costs a query); 404 for an object deleted since; 401 for a
    token of an application whose sources never received the thread, a replayed
    token, or an unknown Flowdock user (with the sign-in link); 403 for a body made for
    another target, or no permission; 429 beyond the throttle's rate; 409 when the
    action's condition no longer holds; 400 when the method raised a
    ``ValidationError``. Nothing is changed in any of these cases.
    """

    authentication_classes = [FlowdockTokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    throttle_classes = [FlowdockActionThrottle]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication, which needs the target and the body and would spend
        # the token.
        if request.method != "POST":
            self.http_method_not_allowed(request)
        self.target = self.resolve(kwargs["signed"])
        check_body(request)
        super().initial(request, *args, **kwargs)

    def flowdock_applications(self, request: Request) -> list[OAuthApplication]:
        """The applications whose sources received the target object's thread: only
        their client secrets may sign an action on it."""
        model, pk, _action = self.target
        instance = model._default_manager.filter(pk=pk).first()
        if instance is None:
            raise NotFound("The object of this action no longer exists.")
        return list(thread_applications(instance.get_flowdock_thread_id()))

    def post(self, request: Request, signed: str) -> Response:
        model, pk, action = self.target
        agent = agent_from(request.body)
        user = request.user
        with transaction.atomic(using=router.db_for_write(model)):
            # Locked, so two people pressing "Assign to me" at once are served in turn
            # and the second sees the condition as it is after the first.
            instance = model._default_manager.select_for_update().filter(pk=pk).first()
            if instance is None:
                raise NotFound("The object of this action no longer exists.")
            if not instance.has_flowdock_action_permission(user, action):
                raise PermissionDenied(f"You may not run “{action.name}” on this object.")
            if not action.is_available(instance, user):
                raise ActionUnavailable()
            try:
                action.run(instance, user, agent)
            except ValidationError as exc:
                raise APIValidationError({"detail": exc.messages}) from None
        identity = request.auth
        assert isinstance(identity, FlowdockIdentity)  # set by FlowdockTokenAuthentication
        # The action is done and committed: a failing receiver is logged, never a 500.
        send_robust(
            action_performed,
            sender=model,
            instance=instance,
            action=action,
            user=user,
            flowdock_user_id=identity.flowdock_user_id,
        )
        return Response({"detail": f"{action.name}: done."})

    def resolve(self, signed: str) -> tuple[type[Any], str, FlowdockAction]:
        try:
            model, pk, key = unsign_target(signed)
        except (signing.BadSignature, LookupError, ValueError):
            raise NotFound("Unknown action.") from None
        action = declared_actions(model).get(key) if issubclass(model, FlowdockThread) else None
        if action is None:
            raise NotFound(f"{model._meta.label} has no action {key!r}.")
        return model, pk, action


def check_body(request: Request) -> None:
    """Raise ``UnsupportedMediaType`` (415) unless the body is JSON in UTF-8, as Flowdock
    sends it: a body sent as a form, as text or in another encoding is never read, so
    no parser can take it for something other than what was signed."""
    header = email.message.Message()
    header["content-type"] = request.content_type
    media_type = header.get_content_type() if request.content_type else "no Content-Type"
    if media_type != "application/json" or header.get_content_charset("utf-8") not in UTF_8:
        raise UnsupportedMediaType(
            media_type,
            detail="Send the action as application/json in UTF-8, as Flowdock does, not "
            f"{request.content_type or 'without a Content-Type'}.",
        )
    body = request.body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        utf_8 = False
    else:
        # JSON text never holds a NUL: such a body is UTF-16 or UTF-32 whatever its label.
        utf_8 = b"\0" not in body
    if not utf_8:
        raise UnsupportedMediaType(
            media_type, detail="The body is not UTF-8: send the action as JSON in UTF-8."
        )


action_view = login_not_required(ActionView.as_view())
