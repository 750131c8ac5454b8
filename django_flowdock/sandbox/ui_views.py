"""The web pages: team inbox, sources, developer application, faults."""

from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .actions import describe, perform_action
from .api_views import storage_path, stream_response
from .control_views import FaultSerializer, reset, revoke, seed_source
from .faults import registry
from .inbox import post_chat_message
from .models import ActionInvocation, Application, Flow, Message, Source, Thread
from .oauth_views import sandbox_user, with_query
from .representations import base_url
from .serializers import ChatMessageSerializer
from .writes import write_transaction


def get_flow(organization: str, flow: str) -> Flow:
    return get_object_or_404(
        Flow.objects.select_related("organization"),
        organization__parameterized_name=organization,
        parameterized_name=flow,
    )


def navigation(flow: Flow) -> dict[str, object]:
    return {"flow": flow, "application": seed_source().application}


def home(request: HttpRequest) -> HttpResponse:
    flow = seed_source().flow
    return redirect(
        "flowdock_sandbox:inbox", flow.organization.parameterized_name, flow.parameterized_name
    )


def inbox(request: HttpRequest, organization: str, flow: str) -> HttpResponse:
    """The team inbox: the list of threads and one open thread (``?thread=ID``, else the
    latest). ``?fragment=1`` renders just the two panes, which the page's script swaps
    in when its stream reports a new message."""
    current = get_flow(organization, flow)
    threads = list(
        current.threads.exclude(source=None)
        .select_related("source__application")
        .prefetch_related("messages")
    )
    wanted = request.GET.get("thread")
    opened = next((thread for thread in threads if thread.id == wanted), None)
    opened = opened or (threads[0] if threads else None)
    timeline = []
    if opened is not None:
        timeline = list(
            opened.messages.select_related("user", "parent").prefetch_related("attachments")
        )
    result = None
    if opened is not None and request.GET.get("result", "").isdigit():
        invocation = ActionInvocation.objects.filter(
            thread=opened, pk=int(request.GET["result"])
        ).first()
        if invocation is not None:
            application = opened.source.application if opened.source else None
            result = describe(invocation, application.name if application else "")
    context = {
        **navigation(current),
        "threads": threads,
        "opened": opened,
        "result": result,
        "timeline": timeline,
        "cids": attachment_urls(timeline),
        "broken_sources": current.sources.filter(removed_at=None).exclude(error_message=""),
        "user_name": sandbox_user().name,
    }
    template = "inbox_panes.html" if request.GET.get("fragment") else "inbox.html"
    return render(request, f"flowdock_sandbox/{template}", context)


def attachment_urls(messages: list[Message]) -> dict[str, str]:
    """Content id → stored file, for ``cid:`` references in the thread's bodies."""
    return {
        attachment.content_id: storage_path(attachment)
        for message in messages
        for attachment in message.attachments.all()
        if attachment.content_id
    }


def inbox_stream(request: HttpRequest, organization: str, flow: str) -> StreamingHttpResponse:
    """The inbox page's own stream: the flow's messages as the signed-in user sees them."""
    return stream_response(request, [get_flow(organization, flow)])


@require_POST
def run_action(
    request: HttpRequest, organization: str, flow: str, thread_id: str, index: int
) -> HttpResponse:
    """Press an action. The page's script asks for JSON and shows the sentence briefly;
    without script the inbox is shown again with the result."""
    thread = get_object_or_404(
        Thread.objects.select_related("source__application"),
        flow=get_flow(organization, flow),
        id=thread_id,
    )
    if index >= len(thread.actions):
        raise Http404("No such action.")
    invocation = perform_action(thread, index, sandbox_user())
    application = thread.source.application if thread.source else None
    result = describe(invocation, application.name if application else "")
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(result)
    url = reverse("flowdock_sandbox:inbox", args=[organization, flow])
    return HttpResponseRedirect(f"{url}?thread={thread.id}&result={invocation.pk}")


@require_POST
def reply(request: HttpRequest, organization: str, flow: str, thread_id: str) -> HttpResponse:
    """The reply box: the signed-in user's chat ``message`` in the thread, as typed in
    Flowdock's inbox (what an integration listening to the flow receives)."""
    current = get_flow(organization, flow)
    thread = get_object_or_404(Thread, flow=current, id=thread_id)
    content = request.POST.get("content", "")
    serializer = ChatMessageSerializer(
        data={"event": "message", "content": content, "thread_id": thread.id}
    )
    if serializer.is_valid() and serializer.validated_data["content"].strip():
        post_chat_message(current, sandbox_user(), serializer.validated_data)
    url = reverse("flowdock_sandbox:inbox", args=[organization, flow])
    return HttpResponseRedirect(f"{url}?thread={thread.id}")


def sources(request: HttpRequest, organization: str, flow: str) -> HttpResponse:
    current = get_flow(organization, flow)
    rows = []
    for source in current.sources.select_related("application").order_by("id"):
        rows.append({"source": source, "configure_url": configure_url(source)})
    return render(request, "flowdock_sandbox/sources.html", {**navigation(current), "rows": rows})


def configure_url(source: Source) -> str:
    """The source's own configuration URL, else the app's Configuration URI, as Flowdock."""
    if source.configuration_url:
        return source.configuration_url
    if source.application and source.application.configuration_uri:
        return with_query(
            source.application.configuration_uri,
            integration_id=str(source.pk),
            flow=source.flow_id,
        )
    return ""


@require_POST
def remove_source(request: HttpRequest, organization: str, flow: str, pk: int) -> HttpResponse:
    revoke(get_object_or_404(Source, flow=get_flow(organization, flow), pk=pk).pk)
    return redirect("flowdock_sandbox:sources", organization, flow)


def application(request: HttpRequest, pk: int) -> HttpResponse:
    """The developer application page: its URIs, the Setup URI generator, source tool."""
    app = get_object_or_404(Application, pk=pk)
    flows = list(Flow.objects.select_related("organization").order_by("name"))
    context = {**navigation(seed_source().flow), "app": app, "flows": flows}
    chosen = next((flow for flow in flows if flow.id == request.GET.get("flow")), None)
    if chosen and app.setup_uri:
        context["chosen_flow"] = chosen
        context["setup_link"] = with_query(
            app.setup_uri, flow=chosen.id, flow_url=f"{base_url(request)}{chosen.path}"
        )
    if request.method == "POST":
        target = next((flow for flow in flows if flow.id == request.POST.get("flow")), None)
        name = request.POST.get("name", "").strip()
        if target and name:
            with write_transaction():
                context["new_source"] = Source.objects.create(
                    flow=target, application=app, creator=sandbox_user(), name=name
                )
    return render(request, "flowdock_sandbox/application.html", context)


def faults(request: HttpRequest) -> HttpResponse:
    errors: dict[str, Any] = {}
    if request.method == "POST":
        action = request.POST.get("do")
        if action == "clear":
            registry.clear()
        elif action == "reset":
            reset()
        elif action == "remove":
            registry.remove(int(request.POST.get("id", 0)))
        else:
            form = {key: value for key, value in request.POST.items() if value != ""}
            serializer = FaultSerializer(data=form)
            if serializer.is_valid():
                registry.add(**serializer.validated_data)
            else:
                errors = serializer.errors
        if not errors:
            return redirect("flowdock_sandbox:faults")
    return render(
        request,
        "flowdock_sandbox/faults.html",
        {**navigation(seed_source().flow), "faults": registry.as_list(), "errors": errors},
    )
