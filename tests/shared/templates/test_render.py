"""Text templates run in jinja2's sandbox: values filled in, a missing variable an
error unless defaulted, Python's internals out of reach, bad syntax refused on save."""

from __future__ import annotations

import pytest

from shared.errors import Unprocessable
from shared.templates.render import check, contact_context, render

CONTEXT = {
    "contact": contact_context({"name": "Kerry Ann", "custom_fields": {"plan": "Pro"}}),
    "agent": {"name": "Sam"},
}


def test_values_are_filled_from_contact_custom_fields_and_agent():
    text = render(
        "Hi {{ contact.first_name }} ({{ contact.custom.plan }}), {{ agent.name }} here.", CONTEXT
    )
    assert text == "Hi Kerry (Pro), Sam here."


def test_a_missing_variable_is_an_error_naming_it_unless_a_default_is_given():
    with pytest.raises(Unprocessable) as missing:
        render("Hi {{ contact.email }}", CONTEXT)
    assert missing.value.code == "template_variable_missing"
    assert "email" in missing.value.message
    assert render('Hi {{ contact.email | default("there") }}', CONTEXT) == "Hi there"
    # a contact without a name is a missing name: the default applies
    nameless = {"contact": contact_context({"name": None})}
    assert render('Hi {{ contact.name | default("there") }}', nameless) == "Hi there"


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ agent.name.__class__.__init__.__globals__ }}",
        "{{ contact.custom.__dict__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_python_internals(source: str):
    with pytest.raises(Unprocessable) as refused:
        render(source, CONTEXT)
    assert refused.value.code in ("template_refused", "template_variable_missing")
    assert "object at" not in refused.value.message  # no Python object leaks into the error


def test_the_sandbox_refuses_attribute_access_to_dunders_by_name():
    with pytest.raises(Unprocessable) as refused:
        render("{{ contact.name.__class__ }}", CONTEXT)
    assert refused.value.code == "template_refused"
    assert "__class__" in refused.value.message


def test_syntax_errors_name_the_line_and_problem():
    with pytest.raises(Unprocessable) as bad:
        check("Hello\n{{ contact.name ", field="body")
    assert bad.value.code == "invalid_template"
    assert bad.value.message.startswith("body: template syntax error on line 2")
    check("Hello {{ contact.name }}")  # a good one passes


def test_no_python_is_run_from_a_template():
    # str.format and eval would see these as code; the sandbox renders text or refuses
    assert render("{0.__class__}", CONTEXT) == "{0.__class__}"
    with pytest.raises(Unprocessable):
        render("{{ range(10**9) | list }}", CONTEXT)
