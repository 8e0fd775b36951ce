"""The ``support`` blueprint: answers a customer's question from the tenant's knowledge base,
citing the chunks it used, and escalates when retrieval is not confident enough.

Knowledge-base use is forced: the agent always calls ``knowledge.search`` before it answers,
and an answer may cite only chunks that search returned. The tool is registered by the
knowledge app (agents does not import it); this module only names it."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext
from agents.blueprints.triage import TICKET_INPUT, TRIAGE_SCHEMA, ticket_text
from agents.llm import LLMResult, OfflineProvider

SEARCH_TOOL = "knowledge.search"
# Characters of the best chunk quoted in an extractive (offline) answer.
EXTRACT_CHARS = 700

SUPPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["answer", "cited_chunk_ids"],
    "properties": {
        "answer": {"type": "string", "minLength": 1},
        "cited_chunk_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    },
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "answer", "citations", "confidence"],
    "properties": {
        "status": {"type": "string", "enum": ["answered", "escalated"]},
        "intent": {"type": "string"},
        "answer": {"type": "string"},
        "citations": {"type": "array"},
        "confidence": {"type": "number"},
    },
}


def _extractive_answer(hits: list[dict[str, Any]]) -> LLMResult:
    """The offline answer: the best chunk, quoted, cited by its id."""
    started = time.perf_counter()
    best = hits[0]
    text = best["text"] if len(best["text"]) <= EXTRACT_CHARS else best["text"][:EXTRACT_CHARS].rsplit(" ", 1)[0] + " …"
    answer = f"Hello,\n\nfrom our help center ({best['document_title']}):\n\n{text}\n\nBest regards,\nSupport"
    return LLMResult(
        data={"answer": answer, "cited_chunk_ids": [best["chunk_id"]]},
        model="offline-extractive",
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=Decimal(0),
        latency_ms=(time.perf_counter() - started) * 1000,
    )


class SupportAgent(BaseAgent):
    name = "support"
    description = (
        "Answers a customer's question from the knowledge base (always searched first), citing "
        "the chunks used; escalates to a human when retrieval confidence is low."
    )
    default_config = {
        "collection": "help-center",
        "top_k": 4,
        "min_confidence": 0.45,
        "max_iterations": 8,
        "system_prompt": (
            "You answer customer questions using only the knowledge-base chunks given, and cite the "
            "ids of the chunks you used. Answer with the JSON schema given."
        ),
    }
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "collection": {"type": "string", "minLength": 1, "maxLength": 100},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 20},
            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50},
            "system_prompt": {"type": "string", "maxLength": 4000},
        },
    }
    input_schema = TICKET_INPUT
    output_schema = OUTPUT_SCHEMA
    tools = (SEARCH_TOOL, "send_reply", "escalate_to_human")

    def execute_step(self, decision: Decision, ctx: StepContext) -> dict[str, Any]:
        """The answer's result names the chunks it cites as ``sources`` (title, chunk id and the
        hash of the chunk's text), which is what a reviewer's evidence snapshot shows when a later
        step of the task (the reply of a manual agent) needs an approval."""
        result = super().execute_step(decision, ctx)
        searched = ctx.step(SEARCH_TOOL)
        if decision.action != "answer" or searched is None:
            return result
        by_id = {hit["chunk_id"]: hit for hit in searched.result.get("results") or []}
        result["sources"] = [
            {
                "title": by_id[chunk_id]["document_title"],
                "ref": f"chunk:{chunk_id}",
                "chunk_id": chunk_id,
                "content_hash": by_id[chunk_id]["text_hash"],
            }
            for chunk_id in result.get("cited_chunk_ids", [])
            if chunk_id in by_id
        ]
        return result

    def _escalate(self, ctx: StepContext, reason: str, output: dict[str, Any]) -> Decision:
        if ctx.step("escalate_to_human") is None:
            return Decision.tool("escalate_to_human", {"reason": reason[:500], "queue": "support"})
        return Decision.escalate(reason, output={**output, "status": "escalated"})

    def plan(self, ctx: StepContext) -> Decision:
        question = ticket_text(ctx.task_input)
        classified = ctx.step("classify")
        if classified is None:
            return Decision.record("classify", self.ask("triage", question, TRIAGE_SCHEMA))
        intent = str(classified.result.get("category", "general"))
        searched = ctx.step(SEARCH_TOOL)
        if searched is None:
            return Decision.tool(
                SEARCH_TOOL,
                {"query": question[:2000], "collection": self.config["collection"], "top_k": self.config["top_k"]},
                reasoning="answers come from the knowledge base only",
            )
        empty: dict[str, Any] = {"intent": intent, "answer": "", "citations": [], "confidence": 0.0}
        if searched.decision in ("denied", "rejected"):
            return self._escalate(ctx, "the knowledge base could not be searched", empty)
        hits: list[dict[str, Any]] = list(searched.result.get("results") or [])
        confidence = float(searched.result.get("confidence") or 0.0)
        empty["confidence"] = confidence
        if not hits or confidence < float(self.config["min_confidence"]):
            why = searched.result.get("error") or f"retrieval confidence {confidence:.2f} is below the threshold"
            return self._escalate(ctx, f"no confident answer in the knowledge base: {why}", empty)
        answered = ctx.step("answer")
        if answered is None:
            if isinstance(self.provider, OfflineProvider):
                return Decision.record("answer", _extractive_answer(hits), reasoning="quotes the best chunk")
            chunks = [{"chunk_id": h["chunk_id"], "title": h["document_title"], "text": h["text"]} for h in hits]
            return Decision.record(
                "answer", self.ask("support", {"question": question, "chunks": chunks}, SUPPORT_SCHEMA)
            )
        by_id = {hit["chunk_id"]: hit for hit in hits}
        cited = [by_id[i] for i in answered.result.get("cited_chunk_ids", []) if i in by_id]
        if not cited or len(cited) != len(answered.result.get("cited_chunk_ids", [])):
            return self._escalate(ctx, "the answer cites chunks that search did not return", empty)
        output = {
            "status": "answered",
            "intent": intent,
            "answer": answered.result["answer"],
            "citations": [
                {"chunk_id": h["chunk_id"], "document_title": h["document_title"], "text_hash": h["text_hash"]}
                for h in cited
            ],
            "confidence": confidence,
        }
        email = ctx.task_input.get("customer_email")
        if email and ctx.step("send_reply") is None:
            return Decision.tool(
                "send_reply",
                {
                    "to": email,
                    "subject": f"Re: {ctx.task_input.get('subject') or 'your question'}",
                    "body": output["answer"],
                },
            )
        return Decision.finish(output)
