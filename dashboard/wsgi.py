import os

from django.core.wsgi import get_wsgi_application

from dashboard.bodies import ChunkedBodies
from dashboard.config import use_private_umask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
use_private_umask()  # gunicorn's workers: before anything is created (the settings module does it too)

# Chunked request bodies are read before Django sees the request (dashboard/bodies.py).
application = ChunkedBodies(get_wsgi_application())
