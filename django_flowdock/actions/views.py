"""The endpoint Flowdock posts to when a chat user presses an UpdateAction."""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import router, transaction
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.exceptions import ValidationError as APIValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
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

try:
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # Django < 5.1 has no LoginRequiredMiddleware to opt out of

    def login_not_required(view_func):  # type: ignore[misc]
        return view_func


class ActionUnavailable(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This action is not available on the object any more."
    default_code = "action_unavailable"


class ActionView(APIView):
    """Runs the action named by the signed URL as the Flowdock user's linked Django user.

    404: altered URL, undefined action, deleted object (found before the token is
    looked at, since the object decides which application may sign); 401: missing,
    invalid, expired or replayed token, a token of an application whose sources never
    received the thread, or an unknown Flowdock user (with the sign-in link); 403: a
    body made for another target, or no permission; 409: the action's condition no
    longer holds; 400: the method raised a ``ValidationError``. Nothing is changed in
    any of these cases.
    """

    authentication_classes = [FlowdockTokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    throttle_classes: list[Any] = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication, which needs the target and would spend the token.
        if request.method != "POST":
            self.http_method_not_allowed(request)
        self.target = self.resolve(kwargs["signed"])
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


action_view = login_not_required(ActionView.as_view())
