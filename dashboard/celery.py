"""The Celery app. Workers are started per runner queue (see README); tasks live in the apps."""

import os

from celery import Celery

from dashboard.config import use_private_umask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# The worker and beat load the settings lazily: their files (broker messages, the beat schedule)
# must be private from the start all the same.
use_private_umask()

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
