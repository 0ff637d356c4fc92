"""The unified inbox: accounts, contacts, conversations, messages, ingestion and sending."""
