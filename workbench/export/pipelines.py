"""The lifecycle as a pipeline for a cluster: what each stage step runs and what it is handed.

``workbench run`` hands each stage the recorded outputs of the stages before it that its notebook
declares as parameters (:func:`hand_over`, the rule both share). On a cluster the values exist only at
run time, so the export computes the *wiring* instead: the same rule, applied to references
(:class:`Ref`: "output ``key`` of stage ``s``") in place of values, gives each step's parameters and the
step that produces each one. The output keys a stage records are read from its notebook's
``record_stage(..., outputs={...})`` call.

Values travel between steps as one YAML scalar per output (written by :func:`write_outputs`, read back
by papermill's ``-y "name: value"``), so a string such as ``'0123'`` or ``'2026-01-01'`` stays a string,
which ``-p`` would turn into a number or a date.

The step runner (``python -m workbench.export.pipelines step ...``) runs papermill in the container,
then writes the stage's record outputs to the files the orchestrator turns into output parameters.
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill as pm
import yaml

from workbench.errors import InvalidInput, NotFound
from workbench.export.target import SecretRef  # one reference type for every exporter
from workbench.lineage import STAGES
from workbench.pipeline import NOTEBOOKS, hand_over

RUN_ID = "pipeline_run_id"
STEP_MODULE = ["python", "-m", "workbench.export.pipelines"]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the reference grammar of the distribution spec (docker/distribution reference), without digests' algos
_IMAGE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY", "PRIVATE_KEY",
                "CREDENTIAL", "CONNECTION")
"""Environment variables whose name says they carry a credential: given inline, the export refuses them."""


@dataclass(frozen=True)
class Ref:
    """Output ``key`` of stage ``stage``: what a parameter is wired to in an exported pipeline."""

    stage: str
    key: str


@dataclass(frozen=True)
class StagePlan:
    """One step of the pipeline: the notebook, its declared parameters and where each handed one comes from."""

    stage: str
    notebook: str
    declared: tuple[str, ...]
    outputs: tuple[str, ...]
    handed: dict[str, Ref] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def takes_run_id(self) -> bool:
        return RUN_ID in self.declared


@dataclass
class ExportOptions:
    """What a platform team chooses about the exported pipeline; every field has a working default."""

    image: str = "workbench:latest"
    name: str = "workbench-lifecycle"
    namespace: str = ""
    project_dir: str = "/workbench"
    """Where the project (notebooks, workbench.toml) lives inside the image; also WORKBENCH_HOME."""
    home_claim: str = "workbench-home"
    """A ReadWriteMany PersistentVolumeClaim mounted at ``project_dir``'s state folder in every step and
    in the RayJob's pods, so the training stage's record is readable by the step after it."""
    service_account: str = ""
    retries: int = 2
    timeout_s: dict[str, int] = field(default_factory=dict)
    default_timeout_s: int = 4 * 3600
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    ray_image: str = ""
    """The RayJob's image (default: ``image``); it needs the workbench package and papermill."""
    ray_workers: int = 1
    ray_cpus: str = "2"
    ray_memory: str = "8Gi"

    def timeout_of(self, stage: str) -> int:
        return int(self.timeout_s.get(stage, self.default_timeout_s))


# hand-over ----------------------------------------------------------------------------------------
def declared_parameters(notebook: Path) -> tuple[str, ...]:
    """The names in the notebook's ``parameters`` cell, as papermill sees them."""
    return tuple(pm.inspect_notebook(str(notebook)))


def recorded_outputs(notebook: Path) -> tuple[str, ...]:
    """The keys of the ``outputs={...}`` dict of the notebook's ``record_stage(...)`` call.

    The export needs them before anything runs; a notebook whose outputs are not a dict literal with
    string keys is InvalidInput (write them as one, as the stage notebooks do).
    """
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if "record_stage" not in source:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # IPython magics: not the recording cell
        for node in ast.walk(tree):
            called = getattr(node.func, "id", getattr(node.func, "attr", "")) if isinstance(node, ast.Call) else ""
            if isinstance(node, ast.Call) and called == "record_stage":
                outputs = next((k.value for k in node.keywords if k.arg == "outputs"), None)
                if outputs is None and len(node.args) >= 3:
                    outputs = node.args[2]
                if not isinstance(outputs, ast.Dict) or not all(
                        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in outputs.keys):
                    raise InvalidInput(f"{notebook.name}: record_stage(outputs=...) must be a dict literal with "
                                       "string keys for the pipeline export to know what the stage hands on")
                return tuple(str(k.value) for k in outputs.keys if isinstance(k, ast.Constant))
    raise InvalidInput(f"{notebook.name} never calls record_stage(...): the stage records nothing to hand on")


def plan_pipeline(notebooks_dir: Path, stages: Sequence[str] | None = None,
                  parameters: Mapping[str, Mapping[str, Any]] | None = None) -> list[StagePlan]:
    """The steps of the lifecycle in order, with each step's parameters wired to the step producing them.

    Applies :func:`hand_over` to references, exactly as ``workbench run`` applies it to recorded values:
    a later stage recording the same key wins (``model_uri`` comes from ``registry``, not ``train``).
    """
    parameters = dict(parameters or {})
    chosen = list(stages) if stages else [s for s in STAGES if (notebooks_dir / NOTEBOOKS[s]).is_file()]
    for name in [*chosen, *parameters]:
        if name not in STAGES:
            raise InvalidInput(f"unknown stage {name!r}; stages are {list(STAGES)}")
    if not chosen:
        raise NotFound(f"no stage notebooks in {notebooks_dir}")
    chosen = sorted(dict.fromkeys(chosen), key=STAGES.index)
    refs: dict[str, Ref] = {}
    plans = []
    for stage in chosen:
        notebook = notebooks_dir / NOTEBOOKS[stage]
        if not notebook.is_file():
            raise NotFound(f"stage {stage!r} has no notebook {notebook}")
        declared = declared_parameters(notebook)
        given = dict(parameters.get(stage, {}))
        wired = hand_over(declared, refs, given, None, NOTEBOOKS[stage])
        wired.pop(RUN_ID, None)
        handed = {k: v for k, v in wired.items() if isinstance(v, Ref) and k not in given}
        outputs = recorded_outputs(notebook)
        plans.append(StagePlan(stage, NOTEBOOKS[stage], declared, outputs, handed, given))
        refs.update({k: Ref(stage, k) for k in outputs})
    return plans


def consumed(plans: Sequence[StagePlan]) -> dict[str, list[str]]:
    """For each stage, the output keys a later step takes (the others need not leave the step)."""
    used: dict[str, list[str]] = {p.stage: [] for p in plans}
    for plan in plans:
        for ref in plan.handed.values():
            if ref.key not in used[ref.stage]:
                used[ref.stage].append(ref.key)
    return used


# values between steps -----------------------------------------------------------------------------
def to_scalar(value: Any) -> str:
    """One value as YAML text that papermill's loader reads back as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, allow_unicode=False)
    return text.removesuffix("\n...\n").removesuffix("\n")


def from_scalar(text: str) -> Any:
    """The inverse of :func:`to_scalar`, with papermill's own loader (no dates)."""
    from papermill.cli import NoDatesSafeLoader

    return yaml.load(text, Loader=NoDatesSafeLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_parameter(name: str, value_text: str) -> str:
    """The ``-y`` argument handing one parameter to papermill."""
    return f"{name}: {value_text}"


def fixed_arguments(plan: StagePlan) -> list[str]:
    """papermill arguments for the parameters fixed at export time (``-p data.n_rows=...``)."""
    args: list[str] = []
    for name, value in plan.fixed.items():
        args += ["-y", yaml_parameter(name, to_scalar(value))]
    return args


def executed_copy(options: ExportOptions, run: str, notebook: str) -> str:
    """Where a step writes the executed notebook: the batch run's folder, as ``workbench run`` does (on the
    shared project volume, so it outlives the pod)."""
    return f"{options.project_dir}/.workbench/runs/{run}/{notebook}"


def step_argv(plan: StagePlan, options: ExportOptions, outputs: Sequence[str], *, run: Any,
              param: Callable[[str], Any], output: Callable[[str], Any], executed: Any) -> list[Any]:
    """The step's command line: the step runner, then ``papermill <notebook> <executed copy> ...`` with the
    stage's parameters as ``workbench run`` passes them. ``run``, ``param(name)`` (the whole ``name: value``
    argument), ``output(key)`` (``key=path``) and ``executed`` (the executed copy's path) are in the
    orchestrator's placeholders (Argo's template strings, KFP's input/output placeholders)."""
    notebooks = f"{options.project_dir}/notebooks"
    argv: list[Any] = [*STEP_MODULE, "step", "--stage", plan.stage, "--run-id", run]
    for key in outputs:
        argv += ["--output", output(key)]
    argv += ["--", "papermill", f"{notebooks}/{plan.notebook}", executed, "--cwd", notebooks,
             "-k", "python3", "--no-progress-bar", "--log-output"]
    if plan.takes_run_id:
        argv += ["-r", RUN_ID, run]
    for name in plan.handed:
        argv += ["-y", param(name)]
    return argv + fixed_arguments(plan)


# validation ---------------------------------------------------------------------------------------
def valid_image(image: str) -> bool:
    """A container image reference as registries parse it: the first part names a registry only when it has
    a '.' or a port or is localhost; otherwise it is a repository path, which is lowercase."""
    if not image or len(image) > 255 or not _IMAGE.match(image):
        return False
    first, _, rest = image.partition("/")
    registry = bool(rest) and ("." in first or ":" in first or first == "localhost")
    return registry or first == first.lower()


def check_options(options: ExportOptions, plans: Sequence[StagePlan]) -> None:
    """Refuse what a cluster would refuse later, or what must never be written into a manifest."""
    for label, image in (("image", options.image), ("ray_image", options.ray_image)):
        if label == "ray_image" and not image:
            continue
        if not valid_image(image):
            raise InvalidInput(f"{label} {image!r} is not a valid container image reference "
                               "(e.g. registry.example.com/team/workbench:1.2)")
    if not DNS_LABEL.match(options.name) or len(options.name) > 52:
        raise InvalidInput(f"name {options.name!r} must be a DNS label of at most 52 characters "
                           "(lowercase letters, digits, '-'); Argo appends a suffix to it")
    if options.namespace and not DNS_LABEL.match(options.namespace):
        raise InvalidInput(f"namespace {options.namespace!r} is not a DNS label")
    if options.home_claim and not DNS_LABEL.match(options.home_claim):
        raise InvalidInput(f"home_claim {options.home_claim!r} is not a valid PersistentVolumeClaim name")
    if options.retries < 0 or options.default_timeout_s <= 0:
        raise InvalidInput("retries must be >= 0 and timeouts > 0 seconds")
    stages = {p.stage for p in plans}
    for stage, seconds in options.timeout_s.items():
        if stage not in STAGES:
            raise InvalidInput(f"timeout given for unknown stage {stage!r}; stages are {list(STAGES)}")
        if stage not in stages:
            raise InvalidInput(f"timeout given for stage {stage!r}, which this pipeline does not run")
        if not int(seconds) > 0:
            raise InvalidInput(f"timeout of stage {stage!r} must be > 0 seconds, got {seconds!r}")
    for name, value in options.env.items():
        if not ENV_NAME.match(name):
            raise InvalidInput(f"{name!r} is not an environment variable name")
        if any(word in name.upper() for word in SECRET_WORDS) or name.upper().endswith("_KEY"):
            raise InvalidInput(f"{name} looks like a credential: give it as a Kubernetes Secret "
                               f"(--secret {name}=<secret-name>:<key>), never as an inline value")
        if not isinstance(value, str):
            raise InvalidInput(f"env {name} must be a string, got {type(value).__name__}")
    for name, ref in options.secrets.items():
        if not ENV_NAME.match(name):
            raise InvalidInput(f"{name!r} is not an environment variable name")
        if not isinstance(ref, SecretRef) or not DNS_LABEL.match(ref.name.replace(".", "-")) or not ref.key:
            raise InvalidInput(f"secret for {name} must name a Kubernetes Secret and a key "
                               f"(<secret-name>:<key>), got {ref!r}")
    both = sorted(set(options.env) & set(options.secrets))
    if both:
        raise InvalidInput(f"{both} given both inline and as a Secret")


def parse_secret(text: str) -> tuple[str, SecretRef]:
    """``ENV=secret-name:key`` (the CLI's --secret)."""
    env, sep, rest = text.partition("=")
    name, sep2, key = rest.partition(":")
    if not sep or not sep2 or not env or not name or not key:
        raise InvalidInput(f"--secret takes ENV=<secret-name>:<key>, got {text!r}")
    if not DNS_LABEL.match(name.replace(".", "-")):
        raise InvalidInput(f"--secret {text!r}: {name!r} is not a Secret name")
    return env, SecretRef(name, key)


# the step runner (inside the container) -----------------------------------------------------------
def write_outputs(outputs: Mapping[str, Any], targets: Mapping[str, str], stage: str) -> None:
    """Write each wanted output as YAML text to its file (which becomes the step's output parameter)."""
    for key, path in targets.items():
        if key not in outputs:
            raise InvalidInput(f"stage {stage!r} recorded no output {key!r} (it recorded {sorted(outputs)}); the "
                               "exported pipeline expects it: export again after changing the notebook")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(to_scalar(outputs[key]))


def _record_outputs(stage: str, run_id: str) -> dict[str, Any]:
    from workbench.config import load_settings
    from workbench.lineage import latest_record

    return latest_record(load_settings(), stage, run_id).outputs


def _main_step(args: argparse.Namespace, papermill: list[str]) -> int:
    if papermill:
        if papermill[0] == "papermill":
            papermill = [sys.executable, "-m", "papermill", *papermill[1:]]
            if len(papermill) > 4:
                Path(papermill[4]).parent.mkdir(parents=True, exist_ok=True)  # papermill will not create it
        done = subprocess.run(papermill, check=False)  # noqa: S603 - argv from the manifest, no shell
        if done.returncode:
            return done.returncode
    targets = dict(_pair(o, "--output") for o in args.output)
    write_outputs(_record_outputs(args.stage, args.run_id), targets, args.stage)
    return 0


def _main_pack(args: argparse.Namespace, papermill: list[str]) -> int:
    """Turn ``-y name: value`` arguments into one base64 YAML mapping (papermill's ``-b``): safe to put in
    a shell command line such as a RayJob's entrypoint."""
    merged: dict[str, Any] = {}
    it = iter(papermill)
    for flag in it:
        if flag != "-y":
            raise InvalidInput(f"pack takes only -y arguments, got {flag!r}")
        merged.update(from_scalar(next(it)) or {})
    Path(args.to).parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(merged, default_flow_style=False) if merged else "{}\n"
    Path(args.to).write_text(base64.b64encode(text.encode()).decode())
    return 0


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"{flag} takes KEY=PATH, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m workbench.export.pipelines")
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step", help="run papermill (the argv after --), then write the record's outputs")
    step.add_argument("--stage", required=True, choices=STAGES)
    step.add_argument("--run-id", required=True)
    step.add_argument("--output", action="append", default=[], metavar="KEY=PATH")
    pack = sub.add_parser("pack", help="the -y arguments after -- as one base64 YAML mapping, to a file")
    pack.add_argument("--to", required=True)
    args = parser.parse_args(argv)
    return _main_step(args, rest) if args.command == "step" else _main_pack(args, rest)


if __name__ == "__main__":
    sys.exit(main())


# `workbench export argo | kfp` --------------------------------------------------------------------------
def register_cli(export_subparsers: Any) -> None:
    """Add ``argo`` and ``kfp`` to the subparsers of ``workbench export``; each sets ``export_handler``
    (call it as ``args.export_handler(settings, args)``)."""
    for target, help_text in (("argo", "the lifecycle as an Argo WorkflowTemplate + Workflow (YAML)"),
                              ("kfp", "the lifecycle as a Kubeflow Pipelines v2 pipeline (IR YAML)")):
        p = export_subparsers.add_parser(target, help=help_text)
        p.add_argument("-o", "--out", help="file to write (default: .workbench/exports/<name>.<target>.yaml)")
        p.add_argument("--image", default=ExportOptions.image, help="container image of the steps")
        p.add_argument("--name", default=ExportOptions.name)
        p.add_argument("--namespace", default="")
        p.add_argument("--service-account", default="")
        p.add_argument("--project-dir", default=ExportOptions.project_dir,
                       help="the project's folder inside the image (WORKBENCH_HOME)")
        p.add_argument("--home-claim", default=ExportOptions.home_claim,
                       help="ReadWriteMany PVC for the project's state ('' for none)")
        p.add_argument("--retries", type=int, default=ExportOptions.retries)
        p.add_argument("--stage-timeout", type=int, default=ExportOptions.default_timeout_s, metavar="SECONDS")
        p.add_argument("--timeout", action="append", default=[], metavar="STAGE=SECONDS")
        p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                       help="plain settings only; credentials go through --secret")
        p.add_argument("--secret", action="append", default=[], metavar="ENV=SECRET:KEY",
                       help="an environment variable from a Kubernetes Secret")
        p.add_argument("-p", "--param", action="append", default=[], metavar="STAGE.NAME=VALUE",
                       help="a notebook parameter fixed in the pipeline (wins over handed-on outputs)")
        p.add_argument("--stages", nargs="+", choices=STAGES, help="the stages to include (default: all)")
        if target == "argo":
            p.add_argument("--ray-image", default="", help="the RayJob's image (default: --image)")
            p.add_argument("--ray-workers", type=int, default=ExportOptions.ray_workers)
        else:
            p.add_argument("--kfp-python", default="", help="Python of the kfp venv (default: .venv-kfp)")
        p.set_defaults(export_handler=cli_export, export_target=target)


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    from workbench.cli import parse_parameters

    env = dict(_pair(e, "--env") for e in args.env)
    timeouts: dict[str, int] = {}
    for item in args.timeout:
        stage, seconds = _pair(item, "--timeout")
        try:
            timeouts[stage] = int(seconds)
        except ValueError as exc:
            raise InvalidInput(f"--timeout takes STAGE=SECONDS, got {item!r}") from exc
    return ExportOptions(
        image=args.image, name=args.name, namespace=args.namespace, project_dir=args.project_dir,
        home_claim=args.home_claim, service_account=args.service_account, retries=args.retries,
        timeout_s=timeouts, default_timeout_s=args.stage_timeout, env=env,
        secrets=dict(parse_secret(s) for s in args.secret), parameters=parse_parameters(args.param),
        ray_image=getattr(args, "ray_image", ""), ray_workers=getattr(args, "ray_workers", ExportOptions.ray_workers))


def cli_export(settings: Any, args: argparse.Namespace) -> int:
    """Write the pipeline file and print where it is."""
    options = options_from_args(args)
    plans = plan_pipeline(settings.project_dir / "notebooks", args.stages, options.parameters)
    default = settings.state_dir / "exports" / f"{options.name}.{args.export_target}.yaml"
    target = Path(args.out) if args.out else default
    if args.export_target == "argo":
        from workbench.export import argo

        print(argo.write(plans, options, target))
        return 0
    from workbench.export import kfp_pipeline

    python = Path(args.kfp_python) if args.kfp_python else kfp_pipeline.default_python(settings.project_dir)
    compiled = kfp_pipeline.compile_pipeline(plans, options, target, python)
    print(f"{compiled.path}  (compiled in {compiled.compile_s:.2f} s)")
    return 0
