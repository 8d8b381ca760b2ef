"""What a connector (the ``rollcall`` CLI) and the import service share of the queue: its names and
topology (``topology``), the wire form of its messages (``messages``), a confirmed publisher."""
