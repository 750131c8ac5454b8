from django.contrib import admin

from .models import Card, CardComment, Tag

admin.site.register(Card)
admin.site.register(CardComment)
admin.site.register(Tag)
