from auth_backend.core.urls import route
from auth_backend.health.views import LiveView, ReadyView

app_name = "health"

# The gateway routes by path prefix, so each endpoint also answers without the trailing
# slash (APPEND_SLASH is off: no redirects behind the gateway).
urlpatterns = [
    route("live", LiveView.as_view(), name="live"),
    route("ready", ReadyView.as_view(), name="ready"),
]
