from django.contrib import admin

from django_flowdock.admin import FlowdockThreadAdminMixin

from .models import Card, CardComment, Tag


@admin.register(Card)
class CardAdmin(FlowdockThreadAdminMixin, admin.ModelAdmin):
    pass


admin.site.register(CardComment)
admin.site.register(Tag)
