import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from config.routing import websocket_application  # noqa: E402

# HTTP is plain Django; websockets pass the live stack (tenant, origin, authentication) first.
application = ProtocolTypeRouter({"http": django_asgi, "websocket": websocket_application})
