"""/v1/imports — CSV imports through the public API (admins only).

Imports are the organization's administration, and a cg_ key never ranks as an
admin (it acts as a manager at most): these routes take an admin's access token
(`Authorization: Bearer <access token>`) and refuse keys with 403. They are the
`imports` function's routes, with its file limit of 100 MB (functions/api.py
streams this body past the usual 1 MiB).
"""

from __future__ import annotations

from fastapi import APIRouter

from shared.imports import web as imports

router = APIRouter(prefix="/imports", tags=["imports"])
router.include_router(imports.router)
STREAMED = {"/v1/imports" + path: limit for path, limit in imports.STREAMED.items()}
