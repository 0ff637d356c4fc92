"""GET /functions/v1/health — the function kit end to end: the app answers and the database too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.web import RuntimeDep, function_app

router = APIRouter()


@router.get("/")
async def health(runtime: RuntimeDep) -> JSONResponse:
    database = await runtime.db.ping()
    return JSONResponse(
        {"status": "ok" if database else "degraded", "database": "ok" if database else "down"},
        status_code=200 if database else 503,
    )


app = function_app(router, name="health")
