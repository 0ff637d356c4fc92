"""The runtime and domain code that the functions share."""
