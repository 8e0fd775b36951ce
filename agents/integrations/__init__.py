"""Integrations with the tenants' own systems: stored credentials, the endpoints that receive
effects, the outbox relay that delivers them and the egress rules every outbound call obeys."""
