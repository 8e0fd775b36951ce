"""Approval requests, escalation policies and reviewer profiles live here (see PRODUCT.md F-HITL)."""
