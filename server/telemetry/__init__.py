"""What an operator sees of the service: JSON logs (logs), Prometheus metrics (metrics) and
OpenTelemetry traces (tracing)."""
