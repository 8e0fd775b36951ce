"""The operator's egress rules for a tenant's endpoints: the one implementation in
config.egress, which governance's single sign-on shares. The URL is checked when the endpoint is
saved and again at each call; the call then connects to the address that was checked
(agents.integrations.http), so a name that re-resolves elsewhere in between (DNS rebinding)
reaches nothing new."""

from __future__ import annotations

from config.egress import EgressRefused, IPAddress, Target, egress_check, resolve, url_parts

__all__ = ["EgressRefused", "IPAddress", "Target", "egress_check", "resolve", "url_parts"]
