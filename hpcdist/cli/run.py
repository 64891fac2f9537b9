"""``hpcdist exec``, ``hpcdist run`` and ``hpcdist postmortem``: running a script or a spec's pipeline."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import click

from hpcdist.cli import options
from hpcdist.errors import HpcdistError

# Each command imports what it runs inside its body: `hpcdist --help` and the batch commands
# then never import the runtime, the pipeline package or mpi4py.

_SCRIPT_CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.command("exec", context_settings=_SCRIPT_CONTEXT)
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def exec_command(script: str, args: tuple[str, ...]) -> None:
    """Inside an MPI world: rank 0 runs SCRIPT, every other rank is a worker.

    Start it with `mpiexec -n N hpcdist exec script.py [ARGS...]`.
    """
    from hpcdist.launcher import exec_script

    sys.exit(exec_script(script, args))


@click.command("postmortem")
@click.argument("state_dir", type=click.Path(file_okay=False))
def postmortem_command(state_dir: str) -> None:
    """Print what each worker was running when a job ended (STATE_DIR = $HPCDIST_STATE_DIR)."""
    from hpcdist.postmortem import postmortem

    for line in postmortem(state_dir):
        click.echo(f"hpcdist: {line}")


def _run_options(command: Callable) -> Callable:
    """``hpcdist run``'s options, for the command and for the options written after SPEC."""
    for option in reversed((options.ranks, options.backend, options.workers, options.timeout, options.overrides,
                            options.resume, options.run_dir)):
        command = option(command)
    return command


@click.command("run", context_settings=_SCRIPT_CONTEXT)
@_run_options
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(nranks: int | None, backend: str | None, workers: int | None, timeout: float | None,
                overrides: tuple[str, ...], resume: str | None, run_dir: str | None,
                script: str, args: tuple[str, ...]) -> None:
    """Run SCRIPT locally: under mpiexec (`hpcdist run -n 4 script.py [ARGS...]`) or, with
    `--backend thread|process|local [--workers N]`, in this process without MPI.

    With a job spec (`hpcdist run SPEC.yaml [-n 4] [--set k=v] [--resume RUN_DIR]`) it runs the
    spec's pipeline and prints the run directory (see docs/pipelines.md)."""
    from hpcdist.launcher import check_timeout, run_local, run_script, split_run_options

    check_timeout(timeout)
    if _is_spec(script):
        from hpcdist.pipeline.run import run_spec  # the pipeline machinery only for a spec

        opts: dict[str, Any] = dict(nranks=nranks, backend=backend, workers=workers, timeout=timeout, resume=resume,
                                    run_dir=run_dir)
        later = _options_after_spec(args)
        opts.update({k: v for k, v in later.items() if v is not None and k != "overrides"})
        sys.exit(run_spec(script, overrides=overrides + tuple(later["overrides"]), **opts))
    if overrides or resume or run_dir:
        raise HpcdistError("--set, --resume and --run-dir apply to a job spec (hpcdist run SPEC.yaml)")
    name, nranks, workers = split_run_options(backend, nranks, workers)
    if name != "mpi":
        sys.exit(run_local(script, args, name, workers, timeout=timeout))
    sys.exit(run_script(script, args, nranks, timeout=timeout))


def _is_spec(path: str) -> bool:
    """Whether ``hpcdist run``'s argument is a job spec (``.yaml``/``.yml``) rather than a script."""
    return path.lower().endswith((".yaml", ".yml"))


@click.command(context_settings={"ignore_unknown_options": False})
@_run_options
def _after_spec(**kw: Any) -> dict[str, Any]:
    return kw


def _options_after_spec(args: Sequence[str]) -> dict[str, Any]:
    """The options written after SPEC (``hpcdist run SPEC -n 4 --set k=v``): ``run``'s own."""
    try:
        ctx = _after_spec.make_context("hpcdist run SPEC", list(args))
    except click.UsageError as exc:
        raise HpcdistError(f"hpcdist run SPEC: {exc.format_message()}") from None
    return dict(ctx.params)
