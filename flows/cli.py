"""The ``llmflow`` command: run, validate, status, recipes, submit, stop.

    llmflow run e2e                      # flows/recipes/e2e.yaml on a local Ray
    llmflow run my.yaml --set steps.pretrain.config.num_steps=50 --force pretrain
    llmflow status e2e                   # per step: done / failed / pending, artifact, MLflow run
    llmflow submit e2e --address http://head:8265   # ray job submit with this dir as runtime_env
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.engine.effects import Effect
from flows.recipe import RecipeError, load_recipe, resolve_recipe_path, shipped_recipes

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Typed, cached, resumable LLM flows on Ray.")
console = Console()

SET_HELP = "Override a recipe field: key.path=value (repeatable), e.g. steps.pretrain.config.num_steps=20"


def _load(recipe: str, overrides: list[str]):
    try:
        return load_recipe(recipe, overrides)
    except RecipeError as e:
        console.print(f"[red]Invalid recipe[/] {e.source}: {len(e.problems)} problem(s)")
        for p in e.problems:
            console.print(f"  - {p}", markup=False)
        raise typer.Exit(2)


@app.command()
def validate(recipe: str, set_: list[str] = typer.Option([], "--set", help=SET_HELP)):
    """Check a recipe; list every problem at once."""
    r = _load(recipe, set_)
    console.print(f"[green]ok[/] {r.source}: {len(r.order)} steps ({' → '.join(r.order)})")


@app.command()
def run(recipe: str,
        set_: list[str] = typer.Option([], "--set", help=SET_HELP),
        force: list[str] = typer.Option([], "--force", help="Recompute this step and everything downstream."),
        address: str | None = typer.Option(None, "--address", help="Ray cluster address (else RAY_ADDRESS)."),
        workdir: Path = typer.Option(Path("."), "--workdir", help="Where local artifacts and mlflow.db live.")):
    """Run a recipe: cached steps are skipped, a failed run resumes at the failed step."""
    from components.tracking.mlflow_tracking import TrackingUnavailable
    from flows.engine.runner import FlowFailed, FlowRunner, FlowTerminated

    r = _load(recipe, set_)
    try:
        runner = FlowRunner(r, workdir=workdir, address=address, console=console)
        result = runner.run(force=force)
    except TrackingUnavailable as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(3)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)
    except (KeyboardInterrupt, FlowTerminated) as e:
        console.print(f"[yellow]flow interrupted ({type(e).__name__}); its MLflow runs are marked KILLED. "
                      "Re-run to resume: completed steps are cached.[/]")
        raise typer.Exit(130 if isinstance(e, KeyboardInterrupt) else 143)
    _summary(result)
    _access_notes(workdir.resolve(), result, runner)
    if not result.ok:
        console.print(f"[red]{FlowFailed(result)}[/]")
        for o in result.outcomes.values():
            if o.status == "failed":
                console.print(f"[red]--- {o.name} ---[/]\n{o.error}", markup=False)
        raise typer.Exit(1)


def _effect_cell(effect: dict) -> str:
    e = Effect(**effect)
    mark = "[green]✓[/]" if e.shown else "[red]✗[/]"
    return f"{mark} {e.name} {e.gain:+.3g}"


def _summary(result) -> None:
    table = Table(title=f"flow {result.name} — {result.wall_s:.1f}s")
    for col in ("step", "status", "wall", "headline metric", "effect vs baseline", "artifact"):
        table.add_column(col)
    for o in result.outcomes.values():
        head = next(iter(o.metrics.items()), None)
        style = {"done": "green", "cached": "blue", "failed": "red", "skipped": "yellow"}[o.status]
        effects = "\n".join(_effect_cell(e) for e in o.effects)
        table.add_row(o.name, f"[{style}]{o.status}[/]", f"{o.wall_s:.1f}s",
                      f"{head[0]}={head[1]:.4g}" if head else "", effects, o.uri)
    console.print(table)
    for o in result.outcomes.values():
        for e in o.effects:
            console.print(f"{o.name}: {Effect(**e).describe()}", markup=False)
    if result.run_id:
        console.print(f"MLflow: parent run {result.run_id}; browse with `bash mlflow/start.sh` → http://127.0.0.1:5000")
    for o in result.outcomes.values():
        if o.status in ("done", "cached"):
            for text in o.links.values():
                console.print(f"{o.name}: {text}", markup=False)


def _access_notes(workdir: Path, result, runner) -> None:
    """Where the secrets of what is left running live (their paths, never their values)."""
    from flows.engine.cluster import head_file

    head = head_file(workdir)
    if head.exists():
        info = json.loads(head.read_text())
        console.print(f"Ray head {info['address']} (log {info.get('log')}); auth token: "
                      f"{info.get('token_path') or 'from RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH'}")
    if any(o.status in ("done", "cached") and runner.plan[o.name].kind.long_lived for o in result.outcomes.values()):
        console.print("Stop serving with: .venv/bin/llmflow stop")


@app.command()
def status(recipe: str, set_: list[str] = typer.Option([], "--set", help=SET_HELP),
           workdir: Path = typer.Option(Path("."), "--workdir")):
    """Per step: done / failed / pending, artifact path, MLflow run id (runs nothing)."""
    from flows.engine.runner import FlowRunner, step_status

    r = _load(recipe, set_)
    table = Table(title=f"{r.name}")
    for col in ("step", "kind", "status", "address", "mlflow run", "artifact"):
        table.add_column(col)
    for row in step_status(FlowRunner(r, workdir=workdir, console=console, tracking=False)):
        table.add_row(row["step"], row["kind"], row["status"], row["address"], row["mlflow_run_id"] or "",
                      row["artifact"])
    console.print(table)


@app.command()
def recipes(kinds: bool = typer.Option(False, "--kinds", help="List step kinds and their config fields.")):
    """List shipped recipes (and with --kinds, the step kinds a recipe may use)."""
    from flows.engine import registry

    for name in shipped_recipes():
        r = load_recipe(name)
        console.print(f"[bold]{name}[/]: {r.model.description}  ({len(r.order)} steps)")
    if kinds:
        for kind in registry.kinds().values():
            console.print(f"\n[bold]{kind.name}[/] inputs={list(kind.inputs)} — {kind.description}")
            for fname, f in kind.config.model_fields.items():
                console.print(f"    {fname} = {f.default!r}: {f.description}", markup=False)


@app.command()
def submit(recipe: str, set_: list[str] = typer.Option([], "--set", help=SET_HELP),
           address: str | None = typer.Option(None, "--address", help="Ray dashboard address (else RAY_ADDRESS)."),
           runtime_env: Path = typer.Option(Path("cluster/runtime_env.yaml"), help="runtime_env YAML for the job."),
           no_wait: bool = typer.Option(False, "--no-wait")):
    """Submit `llmflow run RECIPE` to a Ray cluster with `ray job submit` (this dir as working_dir)."""
    r = _load(recipe, set_)  # fail here, not on the cluster
    addr = address or os.environ.get("RAY_ADDRESS")
    if not addr:
        console.print("[red]No cluster address: pass --address http://HEAD:8265 or set RAY_ADDRESS[/]")
        raise typer.Exit(2)
    cmd = [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", addr, "--working-dir", "."]
    if runtime_env.exists():
        cmd += ["--runtime-env", str(runtime_env)]
    if no_wait:
        cmd.append("--no-wait")
    recipe_arg = str(resolve_recipe_path(recipe))
    cmd += ["--", "llmflow", "run", recipe_arg] + [a for s in set_ for a in ("--set", s)]
    console.print(" ".join(cmd), markup=False)
    raise typer.Exit(subprocess.call(cmd))


@app.command()
def stop(workdir: Path = typer.Option(Path("."), "--workdir")):
    """Stop the local Ray head (and the Serve app on it) that `llmflow run` started for serving."""
    from flows.engine.cluster import stop_local_head

    if stop_local_head(workdir.resolve()):
        console.print("stopped the local Ray cluster and its Serve app")
    else:
        console.print("no local Ray cluster started by llmflow in this directory")


if __name__ == "__main__":
    app()
