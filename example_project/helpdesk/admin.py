from django.contrib import admin

from django_flowdock.admin import FlowdockThreadAdminMixin

from .models import Reply, Ticket


class ReplyInline(admin.TabularInline):
    model = Reply
    extra = 0
    fields = ["text", "author", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Ticket)
class TicketAdmin(FlowdockThreadAdminMixin, admin.ModelAdmin):
    list_display = ["subject", "status", "priority", "assignee", "updated_at"]
    list_filter = ["status", "priority", "assignee"]
    search_fields = ["subject", "description"]
    inlines = [ReplyInline]


@admin.register(Reply)
class ReplyAdmin(admin.ModelAdmin):
    list_display = ["ticket", "author", "created_at"]
    list_select_related = ["ticket", "author"]
    search_fields = ["text", "ticket__subject"]
