"""Liveness and readiness endpoints for the orchestrator and the gateway."""
