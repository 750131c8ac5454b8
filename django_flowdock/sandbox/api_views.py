"""The REST API, at the same paths as on api.flowdock.com."""

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authentication import (
    APITokenBasicAuthentication,
    BearerTokenAuthentication,
    FlowTokenAuthentication,
    require_scope,
)
from .inbox import post_message
from .models import AccessToken, Flow, Source, Thread
from .representations import (
    base_url,
    flow_json,
    message_json,
    source_json,
    thread_json,
    user_json,
)
from .serializers import (
    MessageSerializer,
    SourceSerializer,
    SourceUpdateSerializer,
    nest_form_data,
)
from .writes import write_transaction

USER_OR_FLOW_TOKEN = [
    BearerTokenAuthentication,
    APITokenBasicAuthentication,
    FlowTokenAuthentication,
]


def get_flow(organization: str, flow: str) -> Flow:
    found = (
        Flow.objects.select_related("organization")
        .filter(organization__parameterized_name=organization, parameterized_name=flow)
        .first()
    )
    if found is None:
        raise NotFound("Flow not found.")
    return found


def visible_sources(request: Request) -> QuerySet[Source]:
    """A flow token sees only its own source; a user sees every live source."""
    sources = Source.objects.filter(removed_at=None).select_related(
        "flow__organization", "application", "creator"
    )
    if isinstance(request.auth, Source):
        sources = sources.filter(pk=request.auth.pk)
    return sources


class MessagesView(APIView):
    authentication_classes = [FlowTokenAuthentication]

    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            raise ParseError("Expected a JSON object.")
        data = nest_form_data(data) if isinstance(data, QueryDict) else dict(data)
        data.pop("flow_token", None)
        serializer = MessageSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        message, _ = post_message(request.auth, serializer.validated_data)
        if "X-flowdock-wait-for-message" in request.headers:
            return Response(message_json(message), status=status.HTTP_200_OK)
        return Response({}, status=status.HTTP_202_ACCEPTED)


class FlowListView(APIView):
    def get(self, request: Request) -> Response:
        base = base_url(request)
        flows = Flow.objects.select_related("organization").order_by("name")
        data = [flow_json(flow, base) for flow in flows]
        if request.query_params.get("users") == "1":
            for item in data:
                item["users"] = [user_json(request.user)]
        return Response(data)


class FlowFindView(APIView):
    def get(self, request: Request) -> Response:
        flow = (
            Flow.objects.select_related("organization")
            .filter(id=request.query_params.get("id", ""))
            .first()
        )
        if flow is None:
            raise NotFound("Flow not found.")
        return Response(flow_json(flow, base_url(request)))


class FlowDetailView(APIView):
    def get(self, request: Request, organization: str, flow: str) -> Response:
        return Response(flow_json(get_flow(organization, flow), base_url(request)))


class ThreadListView(APIView):
    def get(self, request: Request, organization: str, flow: str) -> Response:
        threads = (
            get_flow(organization, flow)
            .threads.select_related("source__application")
            .prefetch_related("messages")
        )
        return Response([thread_json(thread) for thread in threads])


def get_thread(organization: str, flow: str, thread_id: str) -> Thread:
    thread = get_flow(organization, flow).threads.filter(id=thread_id).first()
    if thread is None:
        raise NotFound("Thread not found.")
    return thread


class ThreadDetailView(APIView):
    def get(self, request: Request, organization: str, flow: str, thread_id: str) -> Response:
        return Response(thread_json(get_thread(organization, flow, thread_id)))


class ThreadMessagesView(APIView):
    """Oldest first; ``event`` filters, ``limit`` (1-100, default 30) keeps the latest."""

    def get(self, request: Request, organization: str, flow: str, thread_id: str) -> Response:
        messages = get_thread(organization, flow, thread_id).messages.all()
        events = [event for event in request.query_params.get("event", "").split(",") if event]
        if events:
            messages = messages.filter(event__in=events)
        try:
            limit = min(max(int(request.query_params.get("limit", 30)), 1), 100)
        except ValueError:
            limit = 30
        latest = list(messages.order_by("-id")[:limit])
        return Response([message_json(message) for message in reversed(latest)])


class FlowSourcesView(APIView):
    authentication_classes = USER_OR_FLOW_TOKEN

    def get(self, request: Request, organization: str, flow: str) -> Response:
        sources = visible_sources(request).filter(flow=get_flow(organization, flow))
        base = base_url(request)
        return Response([source_json(source, base) for source in sources.order_by("id")])

    def post(self, request: Request, organization: str, flow: str) -> Response:
        if isinstance(request.auth, Source):
            raise NotFound("Sources are created by a user, not with a flow token.")
        require_scope(request, "integration")
        target = get_flow(organization, flow)
        serializer = SourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        application = request.auth.application if isinstance(request.auth, AccessToken) else None
        with write_transaction():
            source = Source.objects.create(
                flow=target,
                application=application,
                creator=request.user,
                **serializer.validated_data,
            )
        return Response(
            source_json(source, base_url(request), flow_token=True),
            status=status.HTTP_201_CREATED,
        )


def update_source(request: Request, source: Source) -> Response:
    serializer = SourceUpdateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    with write_transaction():
        for name, value in serializer.validated_data.items():
            setattr(source, name, value)
        source.save()
    return Response(source_json(source, base_url(request)))


class SourceDetailView(APIView):
    authentication_classes = USER_OR_FLOW_TOKEN

    def get_source(self, request: Request, organization: str, flow: str, pk: int) -> Source:
        source = visible_sources(request).filter(flow=get_flow(organization, flow), pk=pk).first()
        if source is None:
            raise NotFound("Source not found.")
        return source

    def get(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        source = self.get_source(request, organization, flow, pk)
        return Response(source_json(source, base_url(request)))

    def put(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        return update_source(request, self.get_source(request, organization, flow, pk))

    def delete(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        source = self.get_source(request, organization, flow, pk)
        with write_transaction():
            source.removed_at = timezone.now()
            source.save(update_fields=["removed_at", "updated_at"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourcesView(APIView):
    authentication_classes = USER_OR_FLOW_TOKEN

    def get(self, request: Request) -> Response:
        base = base_url(request)
        return Response([source_json(s, base) for s in visible_sources(request).order_by("id")])

    def put(self, request: Request) -> Response:
        if not isinstance(request.auth, Source):
            raise NotFound("PUT /sources identifies the source by its flow_token.")
        return update_source(request, request.auth)


class UserView(APIView):
    def get(self, request: Request) -> Response:
        return Response(user_json(request.user))
