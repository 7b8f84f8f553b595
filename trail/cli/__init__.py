"""`trail` command line: one Typer app; each concern contributes its own sub-app."""

from __future__ import annotations

import typer

from trail.cli.bench import app as bench_app
from trail.cli.dashboards import app as dashboards_app
from trail.cli.doctor import doctor
from trail.cli.eval import app as eval_app
from trail.cli.generate import generate
from trail.cli.inspect import app as inspect_app
from trail.cli.metrics import app as metrics_app
from trail.cli.model import app as model_app
from trail.cli.profile import app as profile_app
from trail.cli.sim import app as sim_app
from trail.cli.train import app as train_app

app = typer.Typer(help="TRAIL-serve: length-aware LLM serving.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.command("generate")(generate)
app.command("doctor")(doctor)
app.add_typer(inspect_app, name="inspect")
app.add_typer(metrics_app, name="metrics")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(bench_app, name="bench")
app.add_typer(profile_app, name="profile")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(sim_app, name="sim")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
