import os

from django.core.wsgi import get_wsgi_application

from dashboard.config import use_private_umask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
use_private_umask()  # gunicorn's workers: before anything is created (the settings module does it too)

application = get_wsgi_application()
