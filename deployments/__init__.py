"""Serve application builders and config YAMLs (`serve run deployments/cpu.yaml`)."""
