"""Receivers for auth and user changes (audit, user events)."""
