"""gitpod.v1.PrebuildService at /gitpod.v1.PrebuildService/<Method>, where Ona's SDK calls it."""

from django.urls import path

from dashboard.connect import connect_view

urlpatterns = [
    path("gitpod.v1.PrebuildService/<str:method>", connect_view, name="connect"),
]
