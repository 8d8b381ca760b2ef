"""Edges of the import service: files, AMQP, gRPC, PostgreSQL, the identity client."""
