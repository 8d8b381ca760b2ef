"""Pure identity rules: no I/O, no asyncio, no SQL, no protobuf. Tested in tests/unit/identity."""
