# syntax=docker/dockerfile:1
# The ConnectGain functions as one image (docs/deploy.md). CONNECTGAIN_FUNCTION
# picks one function's slug, or `all`; either way a function is served at
# /functions/v1/<slug>, beside /functions/v1/health.
#
#   docker build -t connectgain-functions .
#   docker run -p 8000:8000 --env-file prod.env -e CONNECTGAIN_FUNCTION=send-message connectgain-functions

# Build: a virtualenv with the project and its runtime dependencies (no dev extras).
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, from pyproject.toml alone, so a code change reuses their layer.
COPY pyproject.toml README.md ./
RUN mkdir functions shared \
 && touch functions/__init__.py shared/__init__.py \
 && pip install . \
 && pip uninstall --yes connectgain
COPY functions ./functions
COPY shared ./shared
RUN pip install --no-deps . \
 && python -c "import functions, shared.tooling.cli"

# Run: the same slim Python, the virtualenv, the migrations; a user without rights.
FROM python:3.11.14-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 connectgain \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin connectgain
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY supabase ./supabase
# Production by default: the local keys and secret are refused, and the service
# key and the CORS origins must be given. The schedule is pg_cron's on a hosted
# project (`connectgain schedule install`); CONNECTGAIN_SCHEDULE=on runs it here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONNECTGAIN_MODE=production \
    CONNECTGAIN_FUNCTION=all \
    CONNECTGAIN_SCHEDULE=off \
    CONNECTGAIN_API_PORT=8000 \
    CONNECTGAIN_PROJECT_DIR=/app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "shared.tooling.probe"]
CMD ["connectgain", "serve", "--host", "0.0.0.0"]
