"""Meta's Graph code that WhatsApp, Messenger and Instagram share: verification,
error shapes, the Messenger-platform webhook and Send API. Not a channel itself
(no CHANNEL), so the registry passes it over."""
