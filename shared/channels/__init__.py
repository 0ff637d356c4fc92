"""The channels: one package each (`shared/channels/<name>/`, exposing CHANNEL),
discovered by `shared.channels.registry`; `base` and `http` are their common kit."""
