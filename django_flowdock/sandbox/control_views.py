"""``/_sandbox/...``: JSON endpoints for tests and scripts to inspect and steer the sandbox.

They are no part of Flowdock's API and need no credentials: the sandbox is local. A
web page the developer visits must still not steer it, so requests that change
something need the ``X-Sandbox-Control`` header and, when a browser names one, the
sandbox's own ``Origin``; ``ALLOWED_HOSTS`` keeps other host names out.
"""

from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .faults import in_flight, registry
from .models import AccessToken, AuthorizationCode, Flow, Message, Source, Thread
from .options import CONTROL_HEADER
from .representations import (
    base_url,
    message_record,
    source_json,
    source_record,
    thread_record,
)
from .seed import credentials
from .writes import write_transaction


class ScriptsOnly(BasePermission):
    """Reads for anyone on an allowed host; changes only from scripts (see module)."""

    message = (
        f"Send the header {CONTROL_HEADER}: 1 with requests that change the sandbox; "
        "they are refused from web pages of other sites."
    )

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return True
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.get_host()}"
        return bool(request.headers.get(CONTROL_HEADER)) and origin in (None, own)


class ControlView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [ScriptsOnly]


def seed_source() -> Source:
    return Source.objects.select_related("flow__organization", "creator", "application").get(
        is_seed=True
    )


class CredentialsView(ControlView):
    def get(self, request: Request) -> Response:
        return Response(credentials(seed_source(), base_url(request)))


class MessageRecordsView(ControlView):
    """Every accepted message in post order; query parameters filter."""

    filters = {
        "event": "event",
        "flow": "flow_id",
        "source_id": "source_id",
        "thread_id": "thread_id",
        "external_thread_id": "thread__external_thread_id",
        "uuid": "uuid",
    }

    def get(self, request: Request) -> Response:
        lookups = {
            field: request.query_params[name]
            for name, field in self.filters.items()
            if name in request.query_params
        }
        messages = Message.objects.filter(**lookups).select_related("thread").order_by("id")
        return Response([message_record(message) for message in messages])


class ThreadRecordsView(ControlView):
    def get(self, request: Request) -> Response:
        threads = (
            Thread.objects.select_related("source__application")
            .prefetch_related("messages")
            .order_by("created_at")
        )
        return Response([thread_record(thread) for thread in threads])


class SourceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    external_url = serializers.URLField(required=False, allow_blank=True, default="")
    flow = serializers.CharField(required=False, help_text="Flow id; the seeded flow if absent.")


class SourceRecordsView(ControlView):
    def get(self, request: Request) -> Response:
        base = base_url(request)
        sources = Source.objects.select_related("flow__organization", "application", "creator")
        return Response([source_record(source, base) for source in sources.order_by("id")])

    def post(self, request: Request) -> Response:
        """A source of the seeded application, as its Source generation tool makes."""
        serializer = SourceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        seeded = seed_source()
        flow = Flow.objects.filter(id=data.pop("flow", seeded.flow_id)).first()
        if flow is None:
            raise NotFound("Flow not found.")
        with write_transaction():
            source = Source.objects.create(
                flow=flow, application=seeded.application, creator=seeded.creator, **data
            )
        return Response(
            source_json(source, base_url(request), flow_token=True),
            status=status.HTTP_201_CREATED,
        )


def revoke(source_id: int) -> None:
    """Remove the source as Flowdock would: its token answers 410 from now on."""
    with write_transaction():
        updated = Source.objects.filter(pk=source_id, removed_at=None).update(
            removed_at=timezone.now()
        )
    if not updated and not Source.objects.filter(pk=source_id).exists():
        raise NotFound("Source not found.")


class SourceRevokeView(ControlView):
    def post(self, request: Request, pk: int) -> Response:
        revoke(pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaultSerializer(serializers.Serializer):
    path = serializers.RegexField(r"^/", default="/messages")
    status = serializers.IntegerField(min_value=100, max_value=599, allow_null=True, default=None)
    latency = serializers.FloatField(min_value=0, max_value=300, default=0.0)
    drop = serializers.BooleanField(default=False)
    count = serializers.IntegerField(min_value=1, default=1)
    ratio = serializers.FloatField(min_value=0, max_value=1, allow_null=True, default=None)
    retry_after = serializers.IntegerField(min_value=0, allow_null=True, default=None)

    def validate(self, attrs: dict) -> dict:
        if not (attrs["status"] or attrs["latency"] or attrs["drop"]):
            raise serializers.ValidationError("Give a status, a latency or drop.")
        return attrs


class FaultsView(ControlView):
    def get(self, request: Request) -> Response:
        return Response(registry.as_list())

    def post(self, request: Request) -> Response:
        serializer = FaultSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fault = registry.add(**serializer.validated_data)
        return Response({"id": fault.id, **serializer.validated_data}, status=201)

    def delete(self, request: Request) -> Response:
        registry.clear()
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaultDetailView(ControlView):
    def delete(self, request: Request, pk: int) -> Response:
        registry.remove(pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


def reset() -> None:
    """Forget everything posted since the seed; the seeded source works again."""
    registry.clear()
    in_flight.wait_idle(timeout=30)
    with write_transaction():
        Thread.objects.all().delete()
        Message.objects.all().delete()
        Source.objects.filter(is_seed=False).delete()
        Source.objects.filter(is_seed=True).update(
            removed_at=None, error_message="", configuration_url=""
        )
        AccessToken.objects.all().delete()
        AuthorizationCode.objects.all().delete()


class ResetView(ControlView):
    def post(self, request: Request) -> Response:
        reset()
        return Response(status=status.HTTP_204_NO_CONTENT)
