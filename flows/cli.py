"""The ``llmflow`` command: run, validate, status, recipes, submit, cluster, stop.

    llmflow run e2e                      # flows/recipes/e2e.yaml on a local Ray
    llmflow run my.yaml --set steps.pretrain.config.num_steps=50 --force pretrain
    llmflow status e2e                   # per step: done / failed / pending, artifact, MLflow run
    llmflow cluster up                   # head + 2 worker nodes on loopback (llmflow cluster down)
    llmflow submit e2e --address http://head:8265   # a Ray job with this dir as working_dir; streams logs
    llmflow status --job raysubmit_...   # a submitted job's status
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.engine.effects import Effect
from flows.recipe import RecipeError, load_recipe, shipped_recipes

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
    workdir.mkdir(parents=True, exist_ok=True)  # a new run's folder, like `mlflow server --backend-store-uri`'s
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
def status(recipe: str | None = typer.Argument(None, help="A recipe: its steps' status (runs nothing)."),
           set_: list[str] = typer.Option([], "--set", help=SET_HELP),
           job: str | None = typer.Option(None, "--job", help="A job id from `llmflow submit`: its status."),
           address: str | None = typer.Option(None, "--address", help="Ray dashboard address for --job."),
           workdir: Path = typer.Option(Path("."), "--workdir")):
    """Per step: done / failed / pending, artifact path, MLflow run id; or with --job, a submitted job."""
    from flows.engine.runner import FlowRunner, step_status

    if job is None and recipe is None:
        console.print("[red]give a RECIPE, or --job JOB_ID for a submitted job[/]")
        raise typer.Exit(2)
    if job is not None:
        from flows.engine import jobs

        info = jobs.job_info(_cluster_address(address, workdir), job)
        table = Table(title=f"job {job}")
        for col in ("status", "entrypoint", "driver node", "message"):
            table.add_column(col)
        table.add_row(info["status"], info["entrypoint"], info["driver_node_id"] or "", info["message"])
        console.print(table)
        if recipe is None:
            return
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


def _cluster_address(address: str | None, workdir: Path) -> str:
    """--address, else RAY_ADDRESS, else the dashboard of the local cluster `llmflow cluster up` started here."""
    from flows.engine import local_cluster
    from flows.engine.cluster import use_auth

    local = local_cluster.read_state(workdir.resolve())
    addr = address or os.environ.get("RAY_ADDRESS") or (local.dashboard_url if local else None)
    if not addr:
        console.print("[red]No cluster address: pass --address http://HEAD:8265, set RAY_ADDRESS, or start a "
                      "local one with `llmflow cluster up`[/]")
        raise typer.Exit(2)
    if local is not None and addr.rstrip("/") == local.dashboard_url:
        use_auth(workdir.resolve())  # the token our local cluster was started with
    return addr


@app.command()
def submit(recipe: str, set_: list[str] = typer.Option([], "--set", help=SET_HELP),
           address: str | None = typer.Option(None, "--address", help="Ray dashboard address (else RAY_ADDRESS, "
                                              "else the local cluster of `llmflow cluster up`)."),
           runtime_env: Path = typer.Option(Path("cluster/runtime_env.yaml"), help="runtime_env YAML for the job "
                                            "(excludes, env vars); working_dir is always --workdir."),
           env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the job's environment (repeatable); "
                                         "wins over the runtime_env file."),
           workdir: Path = typer.Option(Path("."), "--workdir", help="The directory shipped as the job's working_dir."),
           no_wait: bool = typer.Option(False, "--no-wait", help="Print the job id and return at once.")):
    """Submit `llmflow run RECIPE` as a Ray job (Jobs API), stream its logs, print its id."""
    from flows.engine import jobs

    _load(recipe, set_)  # fail here, not on the cluster
    bad = [e for e in env if "=" not in e]
    if bad:
        console.print(f"[red]--env takes KEY=VALUE; got {bad}[/]")
        raise typer.Exit(2)
    addr = _cluster_address(address, workdir)
    try:
        job_id = jobs.submit_recipe(addr, recipe, workdir=workdir, overrides=set_, env_file=runtime_env,
                                    env=dict(e.split("=", 1) for e in env))
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)
    console.print(f"submitted job {job_id} to {addr}", markup=False)
    if no_wait:
        console.print(f"follow it with: llmflow status --job {job_id} --address {addr}", markup=False)
        return
    status = jobs.follow(addr, job_id, lambda chunk: console.out(chunk, end="", highlight=False))
    console.print(f"job {job_id}: {status}", markup=False)
    if status != "SUCCEEDED":
        raise typer.Exit(1)


cluster_app = typer.Typer(no_args_is_help=True, help="A local multi-node Ray cluster (head + worker nodes on loopback).")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("up")
def cluster_up(workers: int = typer.Option(2, "--workers", help="Worker nodes besides the head."),
               cpus: int = typer.Option(1, "--cpus", help="Logical CPUs of each node."),
               object_store_mb: int = typer.Option(150, "--object-store-mb", help="Object store of each node, MiB."),
               base_port: int = typer.Option(18750, "--base-port", help="Every port the cluster binds is in "
                                             "[base, base+port-span)."),
               port_span: int = typer.Option(300, "--port-span", help="Ports for the cluster: fixed ones plus one "
                                             "per Ray worker process (the e2e flow needs dozens a node)."),
               workdir: Path = typer.Option(Path("."), "--workdir")):
    """Start a head and worker nodes as separate `ray start` processes on 127.0.0.1."""
    from flows.engine import local_cluster

    state = local_cluster.up(workdir, num_workers=workers, num_cpus_per_node=cpus, object_store_mb=object_store_mb,
                             base_port=base_port, port_span=port_span)
    _print_cluster(state)
    console.print(f"submit with: llmflow submit RECIPE   (or RAY_ADDRESS={state.dashboard_url})", markup=False)


@cluster_app.command("down")
def cluster_down(workdir: Path = typer.Option(Path("."), "--workdir")):
    """Stop the nodes `llmflow cluster up` started in this directory (no other Ray cluster is touched)."""
    from flows.engine import local_cluster

    console.print("stopped" if local_cluster.down(workdir) else "no local cluster was up in this directory")


@cluster_app.command("status")
def cluster_status(workdir: Path = typer.Option(Path("."), "--workdir")):
    """The nodes of this directory's local cluster: name, pid, resource, ports."""
    from flows.engine import local_cluster

    state = local_cluster.read_state(workdir.resolve())
    if state is None:
        console.print("no local cluster is up in this directory")
        raise typer.Exit(1)
    _print_cluster(state)


def _print_cluster(state) -> None:
    from flows.engine.cluster import _alive

    table = Table(title=f"local cluster: GCS {state.gcs_address}, jobs API {state.dashboard_url}")
    for col in ("node", "alive", "pid", "resource", "node manager port", "worker ports", "log"):
        table.add_column(col)
    for n in state.nodes:
        table.add_row(n.name, "yes" if n.pid and _alive(n.pid) else "no", str(n.pid), n.resource,
                      str(n.ports["node_manager"]), f"{n.min_worker_port}-{n.max_worker_port}", n.log or "")
    console.print(table)


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
