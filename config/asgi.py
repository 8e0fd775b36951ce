import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

# Websocket routes join this router with the live-updates work; HTTP is plain Django.
application = ProtocolTypeRouter({"http": django_asgi})
