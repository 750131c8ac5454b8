"""Flowdock's API at the root, the sandbox's control API and web pages beside it."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from . import api_views, control_views, oauth_views, ui_views

FLOW = "flows/<slug:organization>/<slug:flow>"

api = [
    path("messages", api_views.MessagesView.as_view(), name="messages"),
    path("comments", api_views.CommentsView.as_view(), name="comments"),
    path("flows", api_views.FlowListView.as_view(), name="flows"),
    path("flows/all", api_views.FlowListView.as_view(), name="flows-all"),
    path("flows/find", api_views.FlowFindView.as_view(), name="flows-find"),
    path(FLOW, api_views.FlowDetailView.as_view(), name="flow"),
    path(f"{FLOW}/messages", api_views.FlowMessagesView.as_view(), name="flow-messages"),
    path(f"{FLOW}/messages/<int:pk>", api_views.MessageDetailView.as_view(), name="flow-message"),
    path(
        f"{FLOW}/messages/<int:message>/comments",
        api_views.CommentsView.as_view(),
        name="message-comments",
    ),
    path(f"{FLOW}/users", api_views.UsersView.as_view(), name="flow-users"),
    path("users", api_views.UsersView.as_view(), name="users"),
    path(f"{FLOW}/threads", api_views.ThreadListView.as_view(), name="threads"),
    path(f"{FLOW}/threads/<str:thread_id>", api_views.ThreadDetailView.as_view(), name="thread"),
    path(
        f"{FLOW}/threads/<str:thread_id>/messages",
        api_views.ThreadMessagesView.as_view(),
        name="thread-messages",
    ),
    path(f"{FLOW}/sources", api_views.FlowSourcesView.as_view(), name="flow-sources"),
    path(f"{FLOW}/sources/<int:pk>", api_views.SourceDetailView.as_view(), name="source"),
    path("sources", api_views.SourcesView.as_view(), name="sources"),
    path("user", api_views.UserView.as_view(), name="user"),
    path("files/<str:flow_id>/<str:token>/<str:name>", api_views.FileView.as_view(), name="file"),
    path(
        "files/<str:flow_id>/<str:token>/thumb/<str:name>",
        api_views.FileView.as_view(),
        name="file-thumbnail",
    ),
    path("storage/<str:token>/<str:name>", api_views.stored_file, name="stored-file"),
    # stream.flowdock.com, on the same host under /stream.
    path("stream/flows", api_views.StreamView.as_view(), name="stream"),
    path(f"stream/{FLOW}", api_views.StreamView.as_view(), name="stream-flow"),
    path("oauth/authorize", oauth_views.authorize, name="authorize"),
    path("oauth/authorize/<str:code>", oauth_views.authorized, name="authorized"),
    path("oauth/token", oauth_views.TokenView.as_view(), name="token"),
]

control = [
    path("credentials", control_views.CredentialsView.as_view(), name="control-credentials"),
    path("messages", control_views.MessageRecordsView.as_view(), name="control-messages"),
    path("threads", control_views.ThreadRecordsView.as_view(), name="control-threads"),
    path("sources", control_views.SourceRecordsView.as_view(), name="control-sources"),
    path(
        "sources/<int:pk>/revoke",
        control_views.SourceRevokeView.as_view(),
        name="control-source-revoke",
    ),
    path("faults", control_views.FaultsView.as_view(), name="control-faults"),
    path("faults/<int:pk>", control_views.FaultDetailView.as_view(), name="control-fault"),
    path("reset", control_views.ResetView.as_view(), name="control-reset"),
]

pages = [
    path("", ui_views.home, name="home"),
    path("app/faults", ui_views.faults, name="faults"),
    path("app/applications/<int:pk>", ui_views.application, name="application"),
    path("app/<slug:organization>/<slug:flow>", ui_views.inbox, name="inbox"),
    path("app/<slug:organization>/<slug:flow>/stream", ui_views.inbox_stream, name="inbox-stream"),
    path(
        "app/<slug:organization>/<slug:flow>/threads/<str:thread_id>/actions/<int:index>",
        ui_views.run_action,
        name="run-action",
    ),
    path(
        "app/<slug:organization>/<slug:flow>/threads/<str:thread_id>/reply",
        ui_views.reply,
        name="reply",
    ),
    path("app/<slug:organization>/<slug:flow>/sources", ui_views.sources, name="sources"),
    path(
        "app/<slug:organization>/<slug:flow>/sources/<int:pk>/remove",
        ui_views.remove_source,
        name="remove-source",
    ),
]

urlpatterns = [
    path("", include((api + pages + [path("_sandbox/", include(control))], "flowdock_sandbox"))),
]


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"message": "Not found"}, status=404)


handler404 = not_found
