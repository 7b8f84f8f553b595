"""`trail` command line: one Typer app; each concern contributes its own sub-app."""

from __future__ import annotations

import typer

from trail.engine.cli import generate
from trail.models.cli import app as model_app

app = typer.Typer(help="TRAIL-serve: length-aware LLM serving.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.command("generate")(generate)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
