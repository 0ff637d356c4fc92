"""Local tooling: the embedded PostgreSQL, the migration runner and the `connectgain` command."""
