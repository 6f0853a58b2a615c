"""`workbench up | down | status | logs | run`: the same domain functions the notebooks call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from workbench.config import Settings, load_settings
from workbench.errors import InvalidInput, WorkbenchError
from workbench.lineage import STAGES
from workbench.pipeline import DEFAULT_STAGE_TIMEOUT_S


def _parse_value(raw: str) -> Any:
    """`-p data.n_rows=5000` gives the int 5000; anything that is not JSON stays a string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_parameters(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise InvalidInput(f"parameter {pair!r} must look like STAGE.NAME=VALUE, e.g. data.n_rows=5000")
        if stage not in STAGES:
            raise InvalidInput(f"parameter {pair!r}: unknown stage {stage!r}; stages are {list(STAGES)}")
        out.setdefault(stage, {})[name] = _parse_value(raw)
    return out


def _cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.services import ServiceManager

    print(f"profile {settings.profile}: starting what is missing under {settings.state_dir} ...", flush=True)
    for status in ServiceManager(settings).up():
        print(status)
    print(_storage_line(settings))
    print(_serve_line(settings))
    return 0


def _storage_line(settings: Settings) -> str:
    if settings.storage == "s3":
        return (f"artifacts: {settings.mlflow_artifacts_uri} at {settings.s3_endpoint}, served to clients by MLflow "
                f"at {settings.mlflow_uri}")
    if settings.profile != "local":
        return f"artifacts: where the MLflow server at {settings.mlflow_uri} keeps them"
    return f"artifacts: {settings.mlflow_dir / 'artifacts'} (storage local)"


def _serve_line(settings: Settings) -> str:
    if settings.profile != "local":
        return f"model endpoints: {settings.serve_url}/<deployment>"
    return f"model endpoints: {settings.serve_url}/<deployment> (serve_ingress {settings.serve_ingress})"


def _cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.services import ServiceManager
    from workbench.serving.vllm import list_llm_deployments, stop_llm

    llms = [d.name for d in list_llm_deployments(settings) if d.running]
    for name in llms:  # vLLM servers run beside Ray, started by deploy_llm: stop them too
        stop_llm(settings, name)
    stopped = [f"vllm:{name}" for name in llms] + ServiceManager(settings).down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing (no service started by workbench up)"))
    return 0


def _cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.services import ServiceManager

    statuses = ServiceManager(settings).status()
    print(f"profile {settings.profile}, state in {settings.state_dir}")
    for status in statuses:
        print(status)
    print(_storage_line(settings))
    print(_serve_line(settings))
    return 0 if all(s.healthy for s in statuses) else 1


def _cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.services import ServiceManager

    print(ServiceManager(settings).logs(args.service, args.lines))
    return 0


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.pipeline import run_pipeline
    from workbench.services import ServiceManager

    if settings.profile == "local" and not args.no_up:
        ServiceManager(settings).up()
    report = run_pipeline(settings, start=args.start, until=args.until,
                          parameters=parse_parameters(args.param), resume_run=args.resume,
                          log_output=args.verbose, stage_timeout_s=args.stage_timeout)
    print(report.summary())
    return 0


def _cmd_deployments(settings: Settings, args: argparse.Namespace) -> int:
    from workbench import serving

    if args.action == "list":
        found = serving.list_deployments(settings)
        for info in found:
            previous = ",".join(h["model_version"] for h in info.history) or "-"
            print(f"{info.name:<20} {info.status:<12} version {info.model_version:<5} previous {previous:<10} "
                  f"replicas {info.replicas}  {info.url}/predict")
        from workbench.serving.vllm import list_llm_deployments

        llms = list_llm_deployments(settings)
        for llm in llms:
            state = "RUNNING" if llm.running else "STOPPED"
            print(f"{llm.name:<20} {state:<12} version {llm.model_version:<5} vLLM {llm.served_model_name:<14} "
                  f"{llm.base_url}/v1")
        if not found and not llms:
            print("no deployments")
        return 0
    if not args.name:
        raise InvalidInput(f"`workbench deployments {args.action}` needs a deployment name")
    if args.action == "rollback":
        info = serving.rollback(settings, args.name)
        print(f"{info.name} serves version {info.model_version} again")
    elif args.action == "delete":
        serving.delete_deployment(settings, args.name)
        print(f"deleted {args.name} (its prediction log stays in {serving.log_dir(settings, args.name)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    parser.add_argument("--profile", choices=["local", "cluster"], help="override the configured profile")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the local MLflow server and Ray head (local profile)")
    sub.add_parser("down", help="stop exactly what `up` started")
    sub.add_parser("status", help="say whether MLflow and Ray answer")
    logs = sub.add_parser("logs", help="print the tail of a service's log")
    logs.add_argument("service", choices=["mlflow", "ray"])
    logs.add_argument("-n", "--lines", type=int, default=50)
    run = sub.add_parser("run", help="run the stage notebooks with papermill")
    run.add_argument("--from", dest="start", choices=STAGES, help="first stage to run")
    run.add_argument("--until", choices=STAGES, help="last stage to run")
    run.add_argument("--resume", metavar="RUN_ID", help="take earlier stages' outputs from this batch run")
    run.add_argument("-p", "--param", action="append", default=[], metavar="STAGE.NAME=VALUE")
    run.add_argument("--no-up", action="store_true", help="do not start services first")
    run.add_argument("-v", "--verbose", action="store_true", help="stream the notebooks' output")
    run.add_argument("--stage-timeout", type=float, default=DEFAULT_STAGE_TIMEOUT_S, metavar="SECONDS",
                     help="stop a stage still running after this long (default: %(default).0f)")
    deployments = sub.add_parser("deployments", help="list, roll back or delete model deployments (Ray Serve)")
    deployments.add_argument("action", choices=["list", "rollback", "delete"], nargs="?", default="list")
    deployments.add_argument("name", nargs="?", help="the deployment (for rollback and delete)")
    from workbench.dashboard_app import register_cli as register_dashboard
    from workbench.export import cli as export_cli
    from workbench.export import pipelines

    register_dashboard(sub)  # workbench dashboard: the monitoring dashboard as a Panel app, offline
    pipelines.register_cli(export_cli.register_cli(sub))  # export rayjob | kueue | rayservice | argo | kfp
    return parser


def _cmd_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.dashboard_app import run_dashboard

    return int(run_dashboard(settings, args) or 0)


def _cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.export.cli import run_export

    return run_export(settings, args)


COMMANDS = {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status, "logs": _cmd_logs, "run": _cmd_run,
            "deployments": _cmd_deployments, "export": _cmd_export, "dashboard": _cmd_dashboard}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = {"profile": args.profile} if args.profile else {}
        settings = load_settings(**overrides)
        return COMMANDS[args.command](settings, args)
    except WorkbenchError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
