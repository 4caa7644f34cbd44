"""WSGI entry point: ``gunicorn -c backend/gunicorn.conf.py auth_backend.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_backend.settings")

application = get_wsgi_application()
