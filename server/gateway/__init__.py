"""The HTTP gateway: legacy note APIs transcoded onto notes.v1 over a grpc.aio channel."""
