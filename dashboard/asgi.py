"""The one ASGI application: pages, REST and Connect through Django, and the environment terminal's
websocket through Channels (`make run` and `make run-prod` serve it with gunicorn's uvicorn workers).

Request bodies: an ASGI server hands Django a body it has already de-chunked (uvicorn reads
`Transfer-Encoding: chunked` itself and sends the bytes in http.request messages), so the WSGI
middleware dashboard/bodies.py has nothing to do here. The websocket checks its Origin against
ALLOWED_HOSTS (a page of another site cannot open it with the visitor's cookie) and reads the
session (AuthMiddlewareStack); the consumer asks who may enter (warmpools/terminal.py).
"""

import os

from django.core.asgi import get_asgi_application

from dashboard.config import use_private_umask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
use_private_umask()
# Django first: the routes below import models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from warmpools.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
