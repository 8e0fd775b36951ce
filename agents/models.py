"""Agents, tools, tasks, steps and effects live here (see PRODUCT.md F-AGT)."""
