"""The gRPC face of the identity service: servicer, converters, role table."""
