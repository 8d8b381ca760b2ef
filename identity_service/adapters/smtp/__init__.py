"""Outgoing mail: sends one mail through SMTP (the courier, ``service/courier.py``, drives it)."""
