"""The REST and Streaming APIs, at the same paths as on api.flowdock.com and
stream.flowdock.com (the latter under ``/stream``)."""

import base64
import binascii
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authentication import (
    APITokenBasicAuthentication,
    BearerTokenAuthentication,
    FlowTokenAuthentication,
    HasScope,
    request_user,
)
from .inbox import Upload, flow_users, post_chat_message, post_message
from .models import AccessToken, Attachment, Flow, Message, Source, Thread, User
from .representations import (
    base_url,
    flow_json,
    message_json,
    source_json,
    thread_json,
    timestamp,
    user_json,
)
from .serializers import (
    BLANK,
    ChatMessageSerializer,
    MessageSerializer,
    SourceSerializer,
    SourceUpdateSerializer,
    nest_form_data,
)
from .streaming import event_stream, json_stream, latest_message_id, messages_after
from .tags import split_tags
from .writes import write_transaction

USER = [BearerTokenAuthentication, APITokenBasicAuthentication]
# A flow token in the body or query string wins over an Authorization header: clients
# such as node-flowdock send their Basic header with every request, integration posts
# included, and Flowdock takes those posts by their flow token.
USER_OR_FLOW_TOKEN = [FlowTokenAuthentication, *USER]
FLOW_SCOPE = ("flow",)
# The production integration guide fetches the flow with the token it got for
# creating sources, so an ``integration`` token may read flows too.
FLOW_READ_SCOPES = ("flow", "integration")
SOURCE_SCOPES = ("flow", "integration")


class FlowdockView(APIView):
    authentication_classes = USER
    permission_classes = [HasScope]
    scopes: tuple[str, ...] = FLOW_SCOPE


def parameters(request: Request) -> dict[str, Any]:
    """Query string and body together, as Rails merges them: some clients send the
    parameters of a GET as a JSON body."""
    merged: dict[str, Any] = {}
    if isinstance(request.data, dict) and request.method == "GET":
        merged.update(request.data)
    merged.update(request.query_params.dict())
    return merged


def request_data(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise ParseError("Expected a JSON object.")
    return nest_form_data(data) if isinstance(data, QueryDict) else dict(data)


def bounded(value: Any, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


def get_flow(organization: str, flow: str) -> Flow:
    found = (
        Flow.objects.select_related("organization")
        .filter(organization__parameterized_name=organization, parameterized_name=flow)
        .first()
    )
    if found is None:
        raise NotFound("Flow not found.")
    return found


def flow_by_id(flow_id: Any) -> Flow:
    if not flow_id:
        raise ValidationError({"flow": [BLANK]})
    found = Flow.objects.select_related("organization").filter(id=str(flow_id)).first()
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


# Posting --------------------------------------------------------------------------------


def uploads_from(request: Request, data: dict[str, Any]) -> list[Upload]:
    """Attachments as multipart files (``attachments[ID]``) or base64 JSON: a list of
    ``{data, content_type, file_name, content_id}`` or an object keyed by content id."""
    uploads = []
    for key, upload in request.FILES.items():
        if key.startswith("attachments"):
            content_id = key.removeprefix("attachments").strip("[]")
            uploads.append(
                Upload(
                    file_name=upload.name,
                    content_type=upload.content_type or "application/octet-stream",
                    data=upload.read(),
                    content_id=content_id,
                )
            )
    given = data.get("attachments")
    if isinstance(given, dict) and not isinstance(request.data, QueryDict):
        given = [{"content_id": key, **value} for key, value in given.items()]
    if isinstance(given, list):
        for index, item in enumerate(given):
            uploads.append(decoded_upload(item, f"attachments.{index}"))
    ids = [bool(upload.content_id) for upload in uploads]
    if any(ids) and not all(ids):
        raise ValidationError({"attachments": ["either all attachments have an id or none has"]})
    return uploads


def decoded_upload(item: Any, name: str) -> Upload:
    if not isinstance(item, dict) or not item.get("data"):
        raise ValidationError({f"{name}.data": [BLANK]})
    try:
        raw = base64.b64decode(str(item["data"]), validate=False)
    except (binascii.Error, ValueError) as error:
        raise ValidationError({f"{name}.data": ["is not valid base64"]}) from error
    return Upload(
        file_name=str(item.get("file_name") or "file"),
        content_type=str(item.get("content_type") or "application/octet-stream"),
        data=raw,
        content_id=str(item.get("content_id") or item.get("id") or ""),
    )


def file_upload(request: Request, data: dict[str, Any]) -> Upload:
    """A ``file`` message's content: a multipart part or base64 JSON."""
    part = request.FILES.get("content")
    if part is not None:
        return Upload(
            file_name=part.name,
            content_type=part.content_type or "application/octet-stream",
            data=part.read(),
        )
    content = data.get("content")
    if isinstance(content, dict):
        return decoded_upload(content, "content")
    raise ValidationError({"content": [BLANK]})


def post_as_source(
    request: Request,
    source: Source,
    data: dict[str, Any],
    flow: Flow | None = None,
    thread_id: str = "",
) -> Response:
    """An integration's ``activity`` or ``discussion``, posted with ``source``'s flow token."""
    if flow is not None and flow.pk != source.flow_id:
        raise NotFound("Flow not found.")
    if thread_id:
        data["thread_id"] = thread_id
    uploads = uploads_from(request, data)
    serializer = MessageSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    message = post_message(source, serializer.validated_data, uploads)
    if "X-flowdock-wait-for-message" in request.headers:
        return Response(message_json(message), status=status.HTTP_200_OK)
    return Response({}, status=status.HTTP_202_ACCEPTED)


def post_as_user(
    request: Request, data: dict[str, Any], flow: Flow | None = None, **fixed: Any
) -> Response:
    """A user's chat ``message``, ``comment``, ``status`` or ``file``."""
    data = {**data, **fixed}
    flow = flow or flow_by_id(data.get("flow"))
    if data.get("event") == "file":
        upload = file_upload(request, data)
        data["content"] = upload.file_name
        uploads = [upload]
    else:
        uploads = []
        if data.get("attachments"):
            raise ValidationError(
                {"attachments": ["are only allowed in activity and discussion messages"]}
            )
    serializer = ChatMessageSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    message = post_chat_message(flow, request_user(request), serializer.validated_data, uploads)
    # Flowdock answers user posts with the created message (clients such as
    # flowdock-api-wrapper check for 201).
    return Response(message_json(message), status=status.HTTP_201_CREATED)


class MessagesView(FlowdockView):
    """``POST /messages``: a flow token posts to the inbox, a user to the flow's chat."""

    authentication_classes = USER_OR_FLOW_TOKEN

    def post(self, request: Request) -> Response:
        data = request_data(request)
        data.pop("flow_token", None)
        if isinstance(request.auth, Source):
            return post_as_source(request, request.auth, data)
        return post_as_user(request, data)


class CommentsView(FlowdockView):
    """``POST /comments`` and ``POST /flows/:org/:flow/messages/:message/comments``."""

    def post(
        self,
        request: Request,
        organization: str | None = None,
        flow: str | None = None,
        message: int | None = None,
    ) -> Response:
        data = request_data(request)
        target = get_flow(organization, flow) if organization and flow else None
        fixed: dict[str, Any] = {"event": "comment"}
        if message is not None:
            fixed["message"] = message
        return post_as_user(request, data, target, **fixed)


class FlowMessagesView(FlowdockView):
    """``GET`` lists a flow's messages; ``POST`` sends one to it."""

    authentication_classes = USER_OR_FLOW_TOKEN

    def get(self, request: Request, organization: str, flow: str) -> Response:
        return Response(list_messages(get_flow(organization, flow).messages.all(), request))

    def post(self, request: Request, organization: str, flow: str) -> Response:
        data = request_data(request)
        data.pop("flow_token", None)
        target = get_flow(organization, flow)
        if isinstance(request.auth, Source):
            return post_as_source(request, request.auth, data, target)
        return post_as_user(request, data, target)

    def check_permissions(self, request: Request) -> None:
        if request.method == "GET" and isinstance(request.auth, Source):
            raise NotFound("Messages are read by users, not with a flow token.")
        super().check_permissions(request)


def list_messages(messages: QuerySet[Message], request: Request) -> list[dict[str, Any]]:
    """The documented filters; the answer is always in ascending ``id`` order."""
    params = parameters(request)
    events = [event for event in str(params.get("event", "")).split(",") if event]
    if events:
        messages = messages.filter(event__in=events)
    search = str(params.get("search", "")).split()
    for word in search:
        messages = messages.filter(
            Q(content__icontains=word) | Q(title__icontains=word) | Q(body__icontains=word)
        )
    if not search:
        if params.get("since_id"):
            messages = messages.filter(id__gt=bounded(params["since_id"], 0, 0, 2**62))
        if params.get("until_id"):
            messages = messages.filter(id__lt=bounded(params["until_id"], 0, 0, 2**62))
    ascending = str(params.get("sort", "")).lower() == "asc"
    ordered = messages.order_by("id" if ascending else "-id").select_related(
        "thread", "parent", "flow"
    )
    wanted = tag_filter(params)
    skip = bounded(params.get("skip"), 0, 0, 2**31) if search else 0
    limit = bounded(params.get("limit"), 30, 1, 100)
    found = []
    for message in ordered.prefetch_related("attachments").iterator(chunk_size=200):
        if wanted and not wanted(message.tags):
            continue
        if skip:
            skip -= 1
            continue
        found.append(message)
        if len(found) == limit:
            break
    found.sort(key=lambda message: message.pk)
    return [message_json(message) for message in found]


def tag_filter(params: dict[str, Any]) -> Any:
    wanted = []
    for tag in split_tags(params.get("tags")):
        if tag.startswith("@"):
            user = User.objects.filter(nick__iexact=tag[1:]).first()
            tag = f":user:{user.pk}" if user else tag
        wanted.append(tag.removeprefix("#").lower())
    if not wanted:
        return None
    combine = any if str(params.get("tag_mode", "and")).lower() == "or" else all
    return lambda tags: combine(tag in {t.lower() for t in tags} for tag in wanted)


class MessageDetailView(FlowdockView):
    def get_message(self, organization: str, flow: str, pk: int) -> Message:
        message = get_flow(organization, flow).messages.filter(pk=pk).first()
        if message is None:
            raise NotFound("Message not found.")
        return message

    def get(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        return Response(message_json(self.get_message(organization, flow, pk)))

    def put(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        message = self.get_message(organization, flow, pk)
        data = request_data(request)
        with write_transaction():
            if "content" in data:
                editable = message.event in ("message", "comment")
                if not editable or message.user_id != request_user(request).pk:
                    raise PermissionDenied("Only your own messages and comments can be edited.")
                message.content = str(data["content"])
                message.edited_at = timezone.now()
            if "tags" in data:
                message.tags = split_tags(data["tags"])
            message.save()
        return Response({})

    def delete(self, request: Request, organization: str, flow: str, pk: int) -> Response:
        message = self.get_message(organization, flow, pk)
        own = message.user_id == request_user(request).pk
        with write_transaction():
            if message.app == "influx" or (own and message.event == "file"):
                message.delete()
                return Response(status=status.HTTP_204_NO_CONTENT)
            if own and message.event in ("message", "comment"):
                message.content = ""
                message.save(update_fields=["content"])
                return Response({})
        raise PermissionDenied("This message cannot be deleted.")


# Flows, users, threads ------------------------------------------------------------------


class FlowListView(FlowdockView):
    scopes = FLOW_READ_SCOPES

    def get(self, request: Request) -> Response:
        base = base_url(request)
        flows = Flow.objects.select_related("organization").order_by("name")
        users = None
        if parameters(request).get("users") in ("1", 1, True, "true"):
            users = list(User.objects.order_by("id"))
        return Response([flow_json(flow, base, users=users) for flow in flows])


class FlowFindView(FlowdockView):
    scopes = FLOW_READ_SCOPES

    def get(self, request: Request) -> Response:
        flow = (
            Flow.objects.select_related("organization")
            .filter(id=request.query_params.get("id", ""))
            .first()
        )
        if flow is None:
            raise NotFound("Flow not found.")
        return Response(flow_json(flow, base_url(request), users=flow_users(flow)))


class FlowDetailView(FlowdockView):
    scopes = FLOW_READ_SCOPES

    def get(self, request: Request, organization: str, flow: str) -> Response:
        found = get_flow(organization, flow)
        return Response(flow_json(found, base_url(request), users=flow_users(found)))


class UsersView(FlowdockView):
    def get(self, request: Request, organization: str | None = None, flow: str | None = None):
        if organization and flow:
            return Response([user_json(user) for user in flow_users(get_flow(organization, flow))])
        return Response([user_json(user) for user in User.objects.order_by("id")])


THREAD_PAGE = 30
MILLISECOND = timedelta(milliseconds=1)
ZERO = timedelta(0)


class ThreadListView(FlowdockView):
    """Newest activity first; ``since``/``until`` bound ``updated_at``, ``application``
    filters, ``limit`` pages (default 30) with a ``Link: <...until=...>; rel="next"``."""

    def get(self, request: Request, organization: str, flow: str) -> Response:
        params = parameters(request)
        threads = get_flow(organization, flow).threads.select_related("source__application")
        # Timestamps are written in milliseconds: "after" means from the next one on.
        bounds = (("since", "updated_at__gte", MILLISECOND), ("until", "updated_at__lt", ZERO))
        for name, lookup, step in bounds:
            if params.get(name):
                moment = parse_datetime(str(params[name]))
                if moment is None:
                    raise ValidationError({name: ["is not an ISO 8601 date"]})
                threads = threads.filter(**{lookup: moment + step})
        application = str(params.get("application", ""))
        if application == "chat":
            threads = threads.filter(source=None)
        elif application in ("inbox", "ìnbox"):
            threads = threads.exclude(source=None)
        elif application:
            threads = threads.filter(source__application_id=bounded(application, 0, 0, 2**62))
        if str(params.get("empty", "0")) != "1":
            threads = threads.filter(messages__isnull=False).distinct()
        ascending = str(params.get("sort", "")).lower() == "asc"
        threads = threads.order_by("updated_at" if ascending else "-updated_at")
        limit = bounded(params.get("limit"), THREAD_PAGE, 1, 100)
        page = list(threads.prefetch_related("messages")[: limit + 1])
        response = Response([thread_json(thread) for thread in page[:limit]])
        if len(page) > limit:
            edge = "since" if ascending else "until"
            query = {**request.query_params.dict(), edge: timestamp(page[limit - 1].updated_at)}
            url = request.build_absolute_uri(request.path) + "?" + urlencode(query)
            response["Link"] = f'<{url}>; rel="next"'
        return response


def get_thread(organization: str, flow: str, thread_id: str) -> Thread:
    thread = get_flow(organization, flow).threads.filter(id=thread_id).first()
    if thread is None:
        raise NotFound("Thread not found.")
    return thread


class ThreadDetailView(FlowdockView):
    def get(self, request: Request, organization: str, flow: str, thread_id: str) -> Response:
        return Response(thread_json(get_thread(organization, flow, thread_id)))


class ThreadMessagesView(FlowdockView):
    """``GET`` lists the thread's messages as the flow's; ``POST`` adds one to it."""

    authentication_classes = USER_OR_FLOW_TOKEN

    def get(self, request: Request, organization: str, flow: str, thread_id: str) -> Response:
        thread = get_thread(organization, flow, thread_id)
        return Response(list_messages(thread.messages.all(), request))

    def post(self, request: Request, organization: str, flow: str, thread_id: str) -> Response:
        data = request_data(request)
        data.pop("flow_token", None)
        thread = get_thread(organization, flow, thread_id)
        if isinstance(request.auth, Source):
            return post_as_source(request, request.auth, data, thread.flow, thread_id=thread.id)
        return post_as_user(request, data, thread.flow, thread_id=thread.id)

    def check_permissions(self, request: Request) -> None:
        if request.method == "GET" and isinstance(request.auth, Source):
            raise NotFound("Messages are read by users, not with a flow token.")
        super().check_permissions(request)


# Files ----------------------------------------------------------------------------------


class FileView(FlowdockView):
    """``GET /files/...``: a redirect to where the file is stored, as in Flowdock. An
    image's ``thumb/`` path redirects to the image itself: the sandbox does not resize,
    the thumbnail's width and height say the size to show it at."""

    def get(self, request: Request, flow_id: str, token: str, name: str) -> HttpResponse:
        attachment = Attachment.objects.filter(token=token, message__flow_id=flow_id).first()
        if attachment is None:
            raise NotFound("File not found.")
        return HttpResponseRedirect(storage_path(attachment))


def storage_path(attachment: Attachment) -> str:
    return f"/storage/{attachment.token}/{attachment.file_name}"


def stored_file(request: Any, token: str, name: str) -> HttpResponse:
    """The stored bytes; the unguessable token stands in for a signed storage URL."""
    attachment = get_object_or_404(Attachment, token=token)
    response = HttpResponse(bytes(attachment.data), content_type=attachment.content_type)
    disposition = "inline" if attachment.is_image else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{attachment.file_name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# Sources --------------------------------------------------------------------------------


class FlowSourcesView(FlowdockView):
    authentication_classes = USER_OR_FLOW_TOKEN
    scopes = SOURCE_SCOPES

    def get(self, request: Request, organization: str, flow: str) -> Response:
        sources = visible_sources(request).filter(flow=get_flow(organization, flow))
        base = base_url(request)
        return Response([source_json(source, base) for source in sources.order_by("id")])

    def post(self, request: Request, organization: str, flow: str) -> Response:
        if isinstance(request.auth, Source):
            raise NotFound("Sources are created by a user, not with a flow token.")
        token = request.auth
        if not isinstance(token, AccessToken) or "integration" not in token.scopes:
            raise PermissionDenied(
                "Sources are created by OAuth applications with the scope 'integration'."
            )
        target = get_flow(organization, flow)
        serializer = SourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with write_transaction():
            source = Source.objects.create(
                flow=target,
                application=token.application,
                creator=request_user(request),
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


class SourceDetailView(FlowdockView):
    authentication_classes = USER_OR_FLOW_TOKEN
    scopes = SOURCE_SCOPES

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


class SourcesView(FlowdockView):
    authentication_classes = USER_OR_FLOW_TOKEN
    scopes = SOURCE_SCOPES

    def get(self, request: Request) -> Response:
        base = base_url(request)
        return Response([source_json(s, base) for s in visible_sources(request).order_by("id")])

    def put(self, request: Request) -> Response:
        if not isinstance(request.auth, Source):
            raise NotFound("PUT /sources identifies the source by its flow_token.")
        return update_source(request, request.auth)


class UserView(FlowdockView):
    scopes = ("profile",)

    def get(self, request: Request) -> Response:
        return Response(user_json(request_user(request)))


# Streaming ------------------------------------------------------------------------------


class AnyContent(BaseContentNegotiation):
    """Streams pick their format from ``Accept`` themselves; errors are JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def wants_event_stream(request: HttpRequest) -> bool:
    accept = request.GET.get("accept") or request.headers.get("Accept", "")
    return "text/event-stream" in accept


def stream_response(request: HttpRequest, flows: list[Flow]) -> StreamingHttpResponse:
    last_event_id = request.headers.get("Last-Event-ID", "")
    after = int(last_event_id) if last_event_id.isdigit() else latest_message_id()
    items = messages_after(flows, after, message_json)
    if wants_event_stream(request):
        response = StreamingHttpResponse(event_stream(items), content_type="text/event-stream")
    else:
        response = StreamingHttpResponse(
            json_stream(items), content_type="application/json; charset=utf-8"
        )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class StreamView(FlowdockView):
    """``GET /stream/flows?filter=org/flow,FLOW_ID`` and ``GET /stream/flows/:org/:flow``."""

    content_negotiation_class = AnyContent

    def get(
        self, request: Request, organization: str | None = None, flow: str | None = None
    ) -> StreamingHttpResponse:
        if organization and flow:
            return stream_response(request, [get_flow(organization, flow)])
        params = request.query_params
        wanted = [name for name in params.get("filter", "").split(",") if name.strip()]
        if not wanted and params.get("user") != "1":
            raise ValidationError({"filter": [BLANK]})
        private = params.get("user") == "1"
        if (
            private
            and isinstance(request.auth, AccessToken)
            and "private" not in request.auth.scopes
        ):
            # Private messages need the ``private`` scope; the sandbox has none to stream.
            raise PermissionDenied("Streaming private messages requires the scope 'private'.")
        flows = []
        for name in wanted:
            organization, _, flow = name.strip().partition("/")
            query = (
                Q(organization__parameterized_name=organization, parameterized_name=flow)
                if flow
                else Q(id=organization)
            )
            found = Flow.objects.filter(query).first()
            if found is None:
                raise NotFound(f"Flow not found: {name}")
            flows.append(found)
        return stream_response(request, flows)
