"""Kommo's notes and tasks as text: a note's body by its type, a task's title and
the description that keeps its type and result."""

from __future__ import annotations

from typing import Any

# Kommo's own task types; an account's others come with /api/v4/account?with=task_types
TASK_TYPES = {1: "Follow-up", 2: "Meeting"}


def note_body(note: dict[str, Any]) -> str | None:
    """A note's text by its Kommo type; None for a type we do not carry over."""
    params = note.get("params") or {}
    if not isinstance(params, dict):
        params = {}
    text = str(params.get("text") or "").strip()
    kind = note.get("note_type")
    if kind in ("common", "invoice_paid"):
        body = text
    elif kind in ("call_in", "call_out"):
        direction = "Incoming" if kind == "call_in" else "Outgoing"
        parts = [f"{direction} call", str(params.get("phone") or "").strip()]
        if params.get("duration"):
            parts.append(f"{params['duration']} s")
        body = " · ".join(p for p in parts if p)
        for extra in (params.get("call_result"), params.get("link")):
            if extra:
                body += f"\n{extra}"
    elif kind in ("service_message", "extended_service_message"):
        service = str(params.get("service") or "").strip()
        body = f"{service}: {text}" if service and text else text or service
    elif kind in ("sms_in", "sms_out"):
        direction = "SMS from" if kind == "sms_in" else "SMS to"
        body = f"{direction} {params.get('phone') or ''}: {text}".replace("  ", " ")
    elif kind == "message_cashier":
        body = f"Payment {params.get('status') or ''}: {text}".strip()
    elif kind == "geolocation":
        body = "\n".join(p for p in (text, str(params.get("address") or "")) if p)
    elif kind == "attachment":
        body = f"Attachment: {params.get('original_name') or params.get('file_name') or ''}"
    else:
        return None
    return body.strip()[:50_000] or ""


def task_title(task: dict[str, Any], type_names: dict[int, str]) -> tuple[str, str]:
    """A task's title and its type's name."""
    kind = type_names.get(int(task.get("task_type_id") or 0), "Task")
    text = str(task.get("text") or "").strip()
    return (text or kind)[:500], kind


def task_description(task: dict[str, Any], kind: str) -> str:
    lines = [f"Kommo task type: {kind}"]
    result = task.get("result")
    if isinstance(result, dict) and str(result.get("text") or "").strip():
        lines.append(f"Result: {str(result['text']).strip()}")
    if task.get("entity_type") == "companies" and task.get("entity_id"):
        lines.append(f"Kommo company: {task['entity_id']}")
    return "\n".join(lines)[:20_000]
