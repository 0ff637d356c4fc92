"""Broadcast campaigns: the audience snapshot, dispatch and the notification log."""
