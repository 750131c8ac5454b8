from django.urls import include, path

from benchmarks.benchapp import views

urlpatterns = [
    path("flowdock/", include("django_flowdock.urls")),
    path("rename/<str:model>/<int:pk>/", views.rename),
]
