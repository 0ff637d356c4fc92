"""Imports from Kommo (API v4): connect an account, then import its pipelines,
users, custom fields, companies, contacts, leads, notes and tasks as one
resumable, idempotent job (run.py; the `kommo-import` cron runs it, runner.py)."""

from shared.imports.kommo.run import run_kommo_import

__all__ = ["run_kommo_import"]
