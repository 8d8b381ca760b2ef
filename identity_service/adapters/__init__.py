"""Adapters at the edge of the identity service: PostgreSQL and gRPC."""
