"""Imports: CSV files and Kommo accounts, each run as one job (`import_jobs`)."""
