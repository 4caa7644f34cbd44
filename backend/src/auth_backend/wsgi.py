"""WSGI entry point: ``gunicorn -c backend/gunicorn.conf.py auth_backend.wsgi``.

Tracing (:mod:`auth_backend.core.tracing`) is switched on here, before the application and
its middleware are loaded, when ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set. Under gunicorn the
``post_fork`` hook of ``backend/gunicorn.conf.py`` has already done it in the worker and
this call does nothing.
"""

import os

from django.core.wsgi import get_wsgi_application

from auth_backend.core.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_backend.settings")

configure_tracing()
application = get_wsgi_application()
