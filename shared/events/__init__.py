"""Domain events after the outbox: the events worker, its consumers and outbound webhooks."""
