"""A template send is checked against the template before WhatsApp is called: its
status, the number or names of its variables, and its header's media type; the
Graph payload is `type: template` as documented."""

from __future__ import annotations

from typing import Any

import pytest

from shared.channels.whatsapp.templates import TemplateSend, prepare_send, variables
from shared.errors import Unprocessable
from tests.fixtures import load

PAGE_1 = load("whatsapp", "templates_page_1")["data"]
PAGE_2 = load("whatsapp", "templates_page_2")["data"]


def stored(graph: dict[str, Any]) -> dict[str, Any]:
    """The row a sync stores from Graph's template."""
    return {key: graph[key] for key in ("name", "language", "status", "components")} | {
        "parameter_format": graph.get("parameter_format", "POSITIONAL")
    }


ORDER_UPDATE, WELCOME_BACK = stored(PAGE_1[0]), stored(PAGE_1[1])
SPRING_SALE, INVOICE_READY = stored(PAGE_2[0]), stored(PAGE_2[1])
IMAGE = {"type": "image", "link": "https://cdn.example.com/box.jpg"}


def send(**fields: Any) -> TemplateSend:
    return TemplateSend.model_validate({"name": "order_update", "language": "en_US"} | fields)


def test_variables_in_order_positional_and_named():
    assert variables("Hi {{2}} {{1}} {{ 2 }}", "POSITIONAL") == ["1", "2"]
    assert variables("{{plan}} for {{first_name}}, {{plan}}", "NAMED") == ["plan", "first_name"]


def test_a_positional_template_with_an_image_header_becomes_graphs_template_object():
    graph, text = prepare_send(ORDER_UPDATE, send(header=IMAGE, body=["Kerry", "A-1001"]))
    assert graph == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "header",
                "parameters": [{"type": "image", "image": {"link": IMAGE["link"]}}],
            },
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Kerry"},
                    {"type": "text", "text": "A-1001"},
                ],
            },
        ],
    }
    assert text == "Hi Kerry, your order A-1001 ships today."


def test_named_variables_carry_their_parameter_names():
    graph, text = prepare_send(
        WELCOME_BACK,
        send(
            name="welcome_back",
            language="en",
            header={"first_name": "Kerry"},
            body={"plan": "Pro", "first_name": "Kerry"},
        ),
    )
    assert graph["components"] == [
        {
            "type": "header",
            "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Kerry"}],
        },
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "plan", "text": "Pro"},
                {"type": "text", "parameter_name": "first_name", "text": "Kerry"},
            ],
        },
    ]
    assert text == "Your Pro plan is waiting for you, Kerry."


@pytest.mark.parametrize(
    ("template", "fields", "words"),
    [
        (ORDER_UPDATE, {"header": IMAGE, "body": ["Kerry"]}, "2 variable(s), 1 value(s)"),
        (ORDER_UPDATE, {"header": IMAGE, "body": ["Kerry", "A", "B"]}, "2 variable(s), 3 value"),
        (ORDER_UPDATE, {"header": IMAGE, "body": {"1": "Kerry", "2": "A"}}, "positional"),
        (ORDER_UPDATE, {"body": ["Kerry", "A-1001"]}, "header is image"),
        (
            ORDER_UPDATE,
            {
                "header": {"type": "video", "link": "https://cdn.example.com/a.mp4"},
                "body": ["K", "A"],
            },
            "header is image",
        ),
        (ORDER_UPDATE, {"header": IMAGE, "body": ["Kerry", " "]}, "empty value"),
        (
            WELCOME_BACK,
            {"header": {"first_name": "K"}, "body": {"plan": "Pro", "name": "K"}},
            "missing ['first_name'], unknown ['name']",
        ),
        (WELCOME_BACK, {"header": {"first_name": "K"}, "body": ["Pro", "K"]}, "named"),
        (
            WELCOME_BACK,
            {"header": IMAGE, "body": {"plan": "P", "first_name": "K"}},
            "header is text",
        ),
    ],
)
def test_values_that_do_not_fit_the_template_are_refused_naming_the_problem(
    template: dict[str, Any], fields: dict[str, Any], words: str
):
    with pytest.raises(Unprocessable) as refused:
        prepare_send(template, send(name=template["name"], language=template["language"], **fields))
    assert refused.value.code == "template_parameters"
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("template", "status"), [(SPRING_SALE, "REJECTED"), (INVOICE_READY, "PENDING")]
)
def test_only_approved_templates_are_sent(template: dict[str, Any], status: str):
    with pytest.raises(Unprocessable) as refused:
        prepare_send(template, send(name=template["name"], body=["x"]))
    assert refused.value.code == "template_not_approved"
    assert status in refused.value.message


def test_a_document_header_keeps_its_filename():
    approved = INVOICE_READY | {"status": "APPROVED"}
    document = {"type": "document", "link": "https://cdn.example.com/i.pdf", "filename": "i.pdf"}
    graph, _ = prepare_send(approved, send(name="invoice_ready", header=document, body=["INV-7"]))
    assert graph["components"][0]["parameters"][0] == {
        "type": "document",
        "document": {"link": "https://cdn.example.com/i.pdf", "filename": "i.pdf"},
    }
