from tests.integrations.support import committed_endpoint, loopback_allowed, receiver

__all__ = ["committed_endpoint", "loopback_allowed", "receiver"]
