"""The ``rollcall`` command: a client of both services and of the import queue."""
