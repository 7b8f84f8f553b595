"""`import_path: deployments.app:build_app` in the Serve YAMLs."""

from trail.serve.app import build_app

__all__ = ["build_app"]
