import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vigil")
# The CELERY_* settings, read from a plain copy (config/celery_settings.py explains why).
app.config_from_object("config.celery_settings:CELERY", namespace="CELERY")
app.autodiscover_tasks()
