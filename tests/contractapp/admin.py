from django.contrib import admin

from .models import Reply, Ticket

admin.site.register(Ticket)
admin.site.register(Reply)
