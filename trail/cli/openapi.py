"""Write (or --check) docs/openapi.json from the live ingress app.

The request and response schemas are vLLM's own protocol models, as FastAPI derives them from
the ingress's routes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trail.serve.ingress import api


def render() -> str:
    """The spec of the ingress app, as written to docs/openapi.json."""
    return json.dumps(api.openapi(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write (or --check) the ingress OpenAPI spec")
    ap.add_argument("path", nargs="?", default="docs/openapi.json")
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    a = ap.parse_args(argv)
    text, path = render(), Path(a.path)
    if a.check:
        current = path.exists() and path.read_text() == text
        print(f"{path}: {'current' if current else 'STALE (rerun without --check)'}")
        return 0 if current else 1
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
