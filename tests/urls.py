from django.contrib import admin
from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("flowdock/", include("django_flowdock.urls")),
    path("tickets/<int:pk>/solve/", views.solve),
]
