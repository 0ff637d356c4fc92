"""The domain events, by type: what the triggers emit (app.emit in the migrations)
and what webhook endpoints may subscribe to. The payload (`data`) is the row as
the trigger saw it (`to_jsonb(new)`), with the change's extra fields where noted."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "contact.created": "A contact was created (the contact row).",
    "contact.updated": "A contact's fields changed (the contact row).",
    "conversation.created": "A conversation was opened (the conversation row).",
    "conversation.assigned": "A conversation's assignee changed (the row, with the previous one).",
    "conversation.status_changed": "A conversation's status changed (the row, with the previous).",
    "message.received": "An inbound message arrived (the message row).",
    "message.sent": "An outbound message was accepted by its channel (the message row).",
    "message.status_changed": "A message's delivery status changed (sent, delivered, read …).",
    "deal.created": "A deal was created (the deal row).",
    "deal.stage_changed": "A deal moved to another stage (the row, with the previous stage).",
    "deal.won": "A deal was won (the deal row).",
    "deal.lost": "A deal was lost (the deal row).",
    "task.created": "A task was created (the task row).",
    "task.completed": "A task was completed (the task row).",
    "task.overdue": "An open task passed its due time (the task row); once per due time.",
    "contact.tag_added": "A tag was put on a contact ({contact_id, tag_id, tag_name}).",
    "conversation.tag_added": "A tag was put on a conversation ({conversation_id, tag_id, …}).",
    "deal.tag_added": "A tag was put on a deal ({deal_id, tag_id, tag_name}).",
    "sla.breached": "A conversation's SLA clock passed its due time unmet (the clock).",
    "webhook_endpoint.disabled": "A webhook endpoint failed for days and was disabled.",
}
