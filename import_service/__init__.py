"""rollcall import service: turns student files and SIS queue messages into identity updates."""
