"""The agents' ``knowledge.search`` tool (level 1, read only), registered in the agents' tool
registry when this app starts (agents does not import knowledge)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from agents.models import PrivilegeLevel
from agents.tools import ToolResult, ToolSpec, register
from config.errors import VigilError
from knowledge.selectors import SearchMode, knowledge_search

SEARCH_TOOL = "knowledge.search"


def _search(args: dict[str, Any]) -> ToolResult:
    # Runs in the task's tenant schema (agents.tasks.TenantTask): only that tenant's chunks.
    try:
        hits = knowledge_search(
            query=args["query"],
            collection=args.get("collection") or settings.KNOWLEDGE_DEFAULT_COLLECTION,
            mode=args.get("mode", SearchMode.HYBRID),
            top_k=args.get("top_k", 5),
            filters=args.get("filters") or None,
        )
    except VigilError as exc:
        # No collection, or the embedder failed: nothing found, and the agent is told why
        # (a support agent escalates on it rather than the task failing).
        return ToolResult({"results": [], "confidence": 0.0, "error": exc.detail})
    similarities = [hit.similarity for hit in hits if hit.similarity is not None]
    return ToolResult(
        {
            "results": [hit.as_dict() for hit in hits],
            # The best cosine similarity of a returned chunk: how sure the retrieval is.
            "confidence": round(max(similarities), 4) if similarities else 0.0,
        }
    )


def search_tool_register() -> None:
    register(
        ToolSpec(
            name=SEARCH_TOOL,
            description="Search the tenant's knowledge base; returns chunks with their ids to cite.",
            level=PrivilegeLevel.READ_ONLY,
            has_side_effect=False,
            run=_search,
            args_schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["query"],
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "collection": {"type": "string", "minLength": 1, "maxLength": 100},
                    "mode": {"type": "string", "enum": [mode.value for mode in SearchMode]},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": settings.KNOWLEDGE_MAX_TOP_K},
                    "filters": {"type": "object"},
                },
            },
        )
    )
