"""The websocket routes of warmpools (mounted by dashboard/asgi.py)."""

from django.urls import path

from warmpools.terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/environments/<uuid:environment_id>/terminal", TerminalConsumer.as_asgi(), name="environment-terminal"),
]
