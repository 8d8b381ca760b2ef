"""gRPC server kit shared by both services: auth, error mapping, metrics, health, lifecycle."""
