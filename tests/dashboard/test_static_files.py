"""Static files are served by the app itself (whitenoise, from the apps' folders: `make run` needs no
collectstatic), with the same security headers as every other response."""

from django.test import Client


def test_static_files_are_served_without_collectstatic_and_carry_the_policy():
    for client in (Client(), Client()):  # each test client builds its own middleware
        response = client.get("/static/django_htmx/htmx-2.min.js")
        assert response.status_code == 200
        assert b"htmx" in b"".join(response.streaming_content)
        assert "script-src 'self'" in response["Content-Security-Policy"]
    assert Client().get("/static/no-such-file.js").status_code == 404
