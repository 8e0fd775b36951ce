"""The support blueprint: always searches the knowledge base, answers citing real chunk ids,
and escalates when retrieval is not confident."""

from __future__ import annotations

from agents.models import AutomationLevel, Step
from governance.models import AuditEvent
from hitl.models import ApprovalRequest
from knowledge.models import Chunk
from tenants.models import Tenant
from tests.agents.api_support import agent_make, task_drive, task_make
from tests.knowledge.support import ingested

PASSWORD_ARTICLE = (
    "# Resetting your password\n\nOpen the sign-in page and click Forgot password. We email you a reset "
    "link that expires after one hour."
)
SHIPPING_ARTICLE = "# Shipping times\n\nDelivery takes three to five business days within the European Union."


def test_the_support_agent_answers_from_the_knowledge_base_citing_real_chunk_ids(acme: Tenant) -> None:
    password = ingested(acme, "help-center", "password.md", PASSWORD_ARTICLE)
    ingested(acme, "help-center", "shipping.md", SHIPPING_ARTICLE)
    agent = agent_make(acme, "helper", "support")

    task = task_drive(
        task_make(acme, agent, {"text": "How do I reset my password?", "customer_email": "dana@example.com"}),
        {"completed", "verified", "escalated"},
    )

    assert task.state in ("completed", "verified"), task.last_error
    output = task.output
    assert output is not None and output["status"] == "answered"
    [citation] = output["citations"]
    chunk = Chunk.objects.get(pk=citation["chunk_id"])
    assert (chunk.document_id, chunk.text_hash) == (password.pk, citation["text_hash"])
    assert "Forgot password" in output["answer"]
    assert output["confidence"] >= 0.45
    actions = list(Step.objects.filter(task=task).order_by("index").values_list("action", flat=True))
    assert actions == ["classify", "knowledge.search", "answer", "send_reply"]


def test_the_support_agent_escalates_when_nothing_in_the_knowledge_base_answers(acme: Tenant) -> None:
    ingested(acme, "help-center", "shipping.md", SHIPPING_ARTICLE)
    agent = agent_make(acme, "helper", "support")

    task = task_drive(
        task_make(acme, agent, {"text": "What is the airspeed velocity of an unladen swallow?"}),
        {"completed", "verified", "escalated"},
    )

    assert task.state == "escalated"
    assert task.output is not None
    assert task.output["status"] == "escalated" and task.output["citations"] == []
    escalation = Step.objects.get(task=task, action="escalate_to_human")
    assert "below the threshold" in escalation.arguments["reason"]


def test_the_support_agent_escalates_when_the_tenant_has_no_knowledge_base(beta: Tenant) -> None:
    agent = agent_make(beta, "helper", "support")

    task = task_drive(
        task_make(beta, agent, {"text": "How do I reset my password?"}), {"completed", "verified", "escalated"}
    )

    assert task.state == "escalated"
    reason = Step.objects.get(task=task, action="escalate_to_human").arguments["reason"]
    assert "no collection named 'help-center'" in reason


def test_the_chunks_an_answer_cites_are_in_the_evidence_a_reviewer_sees(acme: Tenant) -> None:
    password = ingested(acme, "help-center", "password.md", PASSWORD_ARTICLE)
    ingested(acme, "help-center", "shipping.md", SHIPPING_ARTICLE)
    agent = agent_make(acme, "careful-helper", "support", automation_level=AutomationLevel.MANUAL)

    task = task_drive(
        task_make(acme, agent, {"text": "How do I reset my password?", "customer_email": "dana@example.com"}),
        {"awaiting_approval", "completed", "escalated"},
    )

    assert task.state == "awaiting_approval", task.last_error
    request = ApprovalRequest.objects.get(task=task)
    assert request.tool == "send_reply"
    [chunk] = Chunk.objects.filter(document=password)
    [source] = request.evidence["sources"]
    assert source == {"title": password.title, "ref": f"chunk:{chunk.pk}", "content_hash": chunk.text_hash}
    assert "Forgot password" in request.evidence["action"]["arguments"]["body"]
    opened = AuditEvent.objects.get(verb="approval.requested", target_id=str(request.pk))
    assert opened.data["evidence_hash"] == request.evidence_hash
