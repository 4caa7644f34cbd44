from django.urls import path

from auth_backend.health.views import LiveView, ReadyView

app_name = "health"

# The gateway routes by path prefix, so each endpoint also answers without the trailing
# slash (APPEND_SLASH is off: no redirects behind the gateway).
urlpatterns = [
    path("live/", LiveView.as_view(), name="live"),
    path("live", LiveView.as_view()),
    path("ready/", ReadyView.as_view(), name="ready"),
    path("ready", ReadyView.as_view()),
]
