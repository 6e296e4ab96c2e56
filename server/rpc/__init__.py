"""The gRPC entry point: a thin adapter from notes.v1 onto the service layer."""
