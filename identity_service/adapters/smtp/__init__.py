"""Outgoing mail: the courier that drains the database outbox into an SMTP server."""
