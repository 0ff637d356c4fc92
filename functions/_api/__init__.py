"""The public REST API's resources, assembled by functions/api.py (not a function itself)."""
