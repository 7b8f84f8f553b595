"""`trail` command line: one Typer app; each concern contributes its own sub-app."""

from __future__ import annotations

import typer

from ops.grafana.cli import app as dashboards_app
from trail.bench.cli import app as bench_app
from trail.doctor_cli import doctor
from trail.engine.cli import generate
from trail.metrics.cli import app as metrics_app
from trail.models.cli import app as model_app
from trail.predict.eval_cli import app as eval_app
from trail.predict.profile_cli import app as profile_app
from trail.predict.train_cli import app as train_app
from trail.sim.cli import app as sim_app
from trail.store.cli import app as inspect_app

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
