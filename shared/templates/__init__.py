"""Message templates: WhatsApp's (synced from Meta, in shared/channels/whatsapp), the
organization's own text templates and quick replies, rendered in a sandbox."""
