"""The import graph points one way (shared/tooling/layers.py), and the check would
say so if it did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import PROJECT_DIR
from shared.tooling.layers import check, layer_of


def test_the_project_imports_one_way():
    assert [str(v) for v in check(PROJECT_DIR)] == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("shared.tooling.gateway", "tooling"),
        ("functions.send_message", "functions"),
        ("functions._api.common", "functions"),
        ("shared.web", "http"),
        ("shared.guard", "http"),
        ("shared.inbox.webhooks", "http"),  # a FastAPI router until its HTTP part moves out
        ("shared.channels.whatsapp.webhook", "http"),  # a channel package's endpoint glue
        ("shared.channels.whatsapp.parse", "domain"),
        ("shared.channels.http", "domain"),  # the provider client, not the HTTP kit
        ("shared.inbox.pipeline", "domain"),
        ("shared.idempotency", "domain"),
        ("shared.crm.records", "domain"),
        ("shared.runtime", "data"),
        ("shared.db", "data"),
        ("fastapi", None),
    ],
)
def test_every_module_has_its_layer(module: str, layer: str | None):
    assert layer_of(module) == layer


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_import_up_the_layers_or_of_a_web_framework_in_the_domain_is_caught(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "functions/__init__.py": "",
            "functions/send.py": "from shared import web\nfrom shared.crm import deals\n",
            "shared/__init__.py": "",
            "shared/web.py": "import fastapi\nfrom shared.crm.deals import move\n",
            "shared/db.py": "from shared.crm import deals\n",
            "shared/crm/__init__.py": "",
            "shared/crm/deals.py": (
                "from fastapi.responses import JSONResponse\n"
                "def move():\n    from shared.web import respond\n"
                "    from .. import db\n"
            ),
            "shared/tooling/__init__.py": "",
            "shared/tooling/serve.py": "import functions.send\nimport uvicorn\n",
        },
    )
    assert {(v.importer, v.imported, v.line) for v in check(root)} == {
        ("shared.db", "shared.crm.deals", 1),  # data → domain
        ("shared.crm.deals", "fastapi.responses", 1),  # a response built in the domain
        ("shared.crm.deals", "shared.web", 3),  # domain → HTTP kit, even inside a function
    }
