"""/v1/tags — the organization's labels (apply them on each record's /tags)."""

from __future__ import annotations

from functions._api.crud import Resource, crud_router
from functions._api.schemas import Tag
from shared.crm import tags
from shared.crm.entities import TAGS

router = crud_router(
    Resource(
        collection="tags",
        entity=TAGS,
        model=Tag,
        create_input=tags.TagCreate,
        update_input=tags.TagUpdate,
        create=tags.create_tag,
        get=tags.get_tag,
        update=tags.update_tag,
        delete=tags.delete_tag,
    )
)
