"""/functions/v1/imports — CSV imports of contacts and companies (admins only).

POST /csv?organization_id=…&options=…   the file as the body (text/csv) or multipart `file`;
                                        202 the job, or 200 a dry run's preview
GET  /?organization_id=…               the organization's import jobs, newest first
GET  /{id}                             one job: status, progress, report
POST /{id}/cancel                      202; the runner stops before its next chunk
GET  /{id}/rejected.csv                the rejected rows with their reasons (CSV, streamed)

The routes are shared with the public API (/v1/imports); how a file is read,
mapped, deduplicated and merged: shared/imports/.
"""

from __future__ import annotations

from shared.imports import web as imports
from shared.web import function_app

router = imports.router
STREAMED_BODIES = imports.STREAMED  # the CSV file, up to 100 MB, read as it arrives

app = function_app(router, name="imports", streamed_bodies=STREAMED_BODIES)
