"""LLM deployments: a registered language model served by vLLM's OpenAI-compatible server.

A deployment is one vLLM server process per name, started from vLLM's own environment (locally the CPU
build, ``python -m vllm.entrypoints.openai.api_server``; on a GPU host ``vllm serve`` via
``Settings.vllm_command``), bound to 127.0.0.1, health-checked (``/health`` and ``/v1/models``) before
:func:`deploy_llm` returns, and recorded by PID under ``<state>/llm/deployments/`` so that
:func:`stop_llm` stops exactly it. The model is the Hugging Face folder logged with the MLflow model
version (see :mod:`workbench.llm.registry`), downloaded once per version.

vLLM serves one model per process, so rolling to another version (:func:`roll_llm`) starts the new server
beside the old one, waits until it answers, switches the record and then stops the old one: requests that
reach the old server before the switch are answered by it. The endpoint's port changes on a roll; read it
from :func:`get_llm_deployment` (or :func:`llm_client`) rather than keeping it.

The same deployment exported for a cluster: :func:`kserve_llm_manifest` (KServe's Hugging Face runtime with
its vLLM backend) and :func:`ray_serve_llm_config` (a Ray Serve LLM application, for clusters with
``ray[llm]``); both validated, neither applied.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.services.processes import ProcessRecord, log_tail, port_is_free, spawn, stop_tree

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DTYPES = ("auto", "float32", "float16", "bfloat16")
MODEL_ARTIFACT_PATH = "model"  # where workbench.llm.registry logs the Hugging Face folder on the run
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


@dataclass(frozen=True)
class VLLMOptions:
    """The engine arguments a deployment is started with (each maps onto one vLLM flag)."""

    max_model_len: int = 512
    dtype: str = "float32"  # float32 on CPU (bfloat16 gave garbage there); "auto" on a GPU
    gpu_memory_utilization: float | None = None  # GPU hosts only
    tensor_parallel_size: int = 1
    max_num_seqs: int = 4
    enforce_eager: bool = True
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_model_len, int) or self.max_model_len < 16:
            raise InvalidInput(f"max_model_len must be an integer >= 16, got {self.max_model_len!r}")
        if self.dtype not in _DTYPES:
            raise InvalidInput(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise InvalidInput(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}")
        if not isinstance(self.tensor_parallel_size, int) or self.tensor_parallel_size < 1:
            raise InvalidInput(f"tensor_parallel_size must be an integer >= 1, got {self.tensor_parallel_size!r}")
        if not isinstance(self.max_num_seqs, int) or self.max_num_seqs < 1:
            raise InvalidInput(f"max_num_seqs must be an integer >= 1, got {self.max_num_seqs!r}")

    def args(self) -> list[str]:
        out = ["--dtype", self.dtype, "--max-model-len", str(self.max_model_len), "--max-num-seqs",
               str(self.max_num_seqs)]
        if self.tensor_parallel_size != 1:
            out += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        if self.gpu_memory_utilization is not None:
            out += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.enforce_eager:
            out.append("--enforce-eager")
        return out + list(self.extra_args)

    def engine_kwargs(self) -> dict[str, Any]:
        """The same options as vLLM engine keyword arguments (Ray Serve LLM, KServe args)."""
        out: dict[str, Any] = {"dtype": self.dtype, "max_model_len": self.max_model_len,
                               "max_num_seqs": self.max_num_seqs, "tensor_parallel_size": self.tensor_parallel_size,
                               "enforce_eager": self.enforce_eager}
        if self.gpu_memory_utilization is not None:
            out["gpu_memory_utilization"] = self.gpu_memory_utilization
        return out


@dataclass(frozen=True)
class LLMDeployment:
    """A vLLM deployment as recorded: what it serves, where, and the process serving it."""

    name: str
    model_uri: str  # the pinned version, models:/<name>/<version>
    model_name: str
    model_version: str
    served_model_name: str
    model_dir: str
    host: str
    port: int
    options: dict[str, Any]
    process: dict[str, Any]
    created_at: str
    history: list[str] = field(default_factory=list)  # model URIs served before, oldest first
    requested_uri: str = ""  # what the caller asked for (an alias is resolved once, here)

    @property
    def base_url(self) -> str:
        """The OpenAI API base URL (``…/v1``) of this deployment."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def log(self) -> str:
        return str(self.process.get("log", ""))

    @property
    def pid(self) -> int:
        return int(self.process.get("pid", 0))

    def record(self) -> ProcessRecord:
        return ProcessRecord(**self.process)

    @property
    def running(self) -> bool:
        return self.record().process() is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base_url": self.base_url, "running": self.running}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMDeployment:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def check_llm_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"deployment name must be lower-case letters, digits and '-' (at most 63), got {name!r}")
    return name


def _deployments_dir(settings: Settings) -> Path:
    return settings.llm_dir / "deployments"


def _record_path(settings: Settings, name: str) -> Path:
    return _deployments_dir(settings) / f"{name}.json"


def _save(settings: Settings, deployment: LLMDeployment) -> None:
    path = _record_path(settings, deployment.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(deployment), indent=2))
    os.replace(tmp, path)


def _load(settings: Settings, name: str) -> LLMDeployment | None:
    path = _record_path(settings, name)
    if not path.is_file():
        return None
    try:
        return LLMDeployment.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def list_llm_deployments(settings: Settings) -> list[LLMDeployment]:
    """Every recorded vLLM deployment (running or not), by name."""
    folder = _deployments_dir(settings)
    found = [_load(settings, p.stem) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [d for d in found if d is not None]


def get_llm_deployment(settings: Settings, name: str) -> LLMDeployment:
    check_llm_name(name)
    found = _load(settings, name)
    if found is None:
        known = [d.name for d in list_llm_deployments(settings)]
        raise NotFound(f"no vLLM deployment {name!r}" + (f"; deployments: {known}" if known else
                                                           "; deploy one with deploy_llm(settings, model_uri)"))
    return found


# ---------------------------------------------------------------------------------------------------------
# the command


def vllm_command(settings: Settings, model_dir: str | Path, *, port: int, served_model_name: str,
                 options: VLLMOptions) -> list[str]:
    """The argument list that starts vLLM's OpenAI server for ``model_dir`` on ``settings.host:port``."""
    if settings.vllm_command:
        base = shlex.split(settings.vllm_command)
        # `vllm serve <model>` takes the model as its first argument; the api_server module takes --model
        model = [str(model_dir)] if base[-1] == "serve" else ["--model", str(model_dir)]
    else:
        base = [str(settings.vllm_interpreter), "-m", API_SERVER_MODULE]
        model = ["--model", str(model_dir)]
    return [*base, *model, "--served-model-name", served_model_name, "--host", settings.host, "--port", str(port),
            *options.args()]


def check_vllm_environment(settings: Settings) -> None:
    """ServiceUnavailable, saying how to create it, when vLLM's environment is missing."""
    if settings.vllm_command:
        exe = shlex.split(settings.vllm_command)[0]
        if shutil.which(exe) is None and not Path(exe).is_file():
            raise ServiceUnavailable(f"vllm_command {settings.vllm_command!r}: {exe!r} is not on PATH; install vLLM "
                                     "on this host or unset vllm_command")
        return
    if not settings.vllm_interpreter.is_file():
        raise ServiceUnavailable(f"vLLM's environment is missing ({settings.vllm_interpreter} does not exist): run "
                                 "`make llm` to create it (the CPU build of vLLM in .venv-vllm, ~3 min, 3.4 GB), or "
                                 "set vllm_command / vllm_python in workbench.toml")


def _vllm_env(settings: Settings) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1", "VLLM_CPU_KVCACHE_SPACE": str(settings.vllm_cpu_kvcache_gib),
            "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
            # the key through the environment: a command line is readable by every user of the machine
            **({"VLLM_API_KEY": settings.vllm_api_key} if settings.vllm_api_key else {})}


def _free_port(settings: Settings, taken: set[int]) -> int:
    for port in range(settings.vllm_port, settings.vllm_port + 100):
        if port not in taken and port_is_free(settings.host, port):
            return port
    raise ServiceUnavailable(f"no free port in {settings.vllm_port}-{settings.vllm_port + 99} on {settings.host} "
                             "for vLLM; stop a deployment or change vllm_port")


def auth_headers(settings: Settings) -> dict[str, str]:
    """What a request to a local vLLM server's /v1 routes carries when an API key is configured."""
    return {"Authorization": f"Bearer {settings.vllm_api_key}"} if settings.vllm_api_key else {}


def _healthy(url: str, served_model_name: str, timeout_s: float, headers: dict[str, str] | None = None) -> bool:
    try:
        if requests.get(f"{url}/health", timeout=timeout_s).status_code != 200:
            return False
        models = requests.get(f"{url}/v1/models", timeout=timeout_s, headers=headers or {}).json()
        return any(m.get("id") == served_model_name for m in models.get("data", []))
    except (requests.RequestException, ValueError):
        return False


def _start_server(settings: Settings, name: str, model_dir: Path, served_model_name: str, options: VLLMOptions,
                  port: int) -> ProcessRecord:
    check_vllm_environment(settings)
    logs = settings.llm_dir / "logs"
    log = logs / f"{name}-{port}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    command = vllm_command(settings, model_dir, port=port, served_model_name=served_model_name, options=options)
    proc = spawn(f"vllm-{name}", command, log, {**settings.engine_env(), **_vllm_env(settings)},
                 cwd=settings.llm_dir)
    record = ProcessRecord(name=f"vllm-{name}-{port}", pid=proc.pid, create_time=proc.create_time(), port=port,
                           url=f"http://{settings.host}:{port}", log=str(log), command=command)
    url = record.url
    deadline = time.monotonic() + settings.vllm_start_timeout_s
    delay = 0.5
    while True:
        if _healthy(url, served_model_name, settings.request_timeout_s, auth_headers(settings)):
            return record
        try:
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        if not alive or time.monotonic() > deadline:
            stop_tree(proc, grace_s=10)
            why = "exited while starting" if not alive else \
                f"did not answer /health within {settings.vllm_start_timeout_s:.0f} s"
            raise ServiceUnavailable(f"vLLM for {name!r} ({model_dir}) {why}; its log {log} ends with:\n"
                                     f"{log_tail(log, 25)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def start_vllm(settings: Settings, model_dir: str | Path, *, name: str, served_model_name: str,
               options: VLLMOptions | None = None, port: int | None = None) -> ProcessRecord:
    """Start a bare vLLM server on a model folder (no registry, no deployment record), health-checked.

    For benchmarks and experiments; stop it with ``stop_tree(record.process())``. Deployments use
    :func:`deploy_llm`.
    """
    chosen = port if port is not None else _free_port(settings, set())
    return _start_server(settings, check_llm_name(name), Path(model_dir), served_model_name, options or VLLMOptions(),
                         chosen)


# ---------------------------------------------------------------------------------------------------------
# the model folder


def download_llm(settings: Settings, model_uri: str) -> tuple[Path, Any]:
    """Resolve ``model_uri`` once and download its Hugging Face folder (cached per version)."""
    from workbench.registry import resolve_model_uri
    from workbench.registry.client import mlflow_client, mlflow_errors

    resolved = resolve_model_uri(settings, model_uri)
    version = resolved.version
    if version is None or not resolved.run_id:
        raise InvalidInput(f"{model_uri!r} must name a registered model version (models:/<name>/<version> or "
                           "models:/<name>@<alias>) logged with workbench.llm.log_llm")
    target = settings.llm_dir / "models" / version.name / version.version
    if (target / "config.json").is_file():
        return target, version
    client = mlflow_client(settings)
    staging = target.with_name(f".{version.version}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with mlflow_errors(f"downloading the model folder of {version.uri} (run {resolved.run_id})"):
        client.download_artifacts(resolved.run_id, MODEL_ARTIFACT_PATH, str(staging))
    folder = staging / MODEL_ARTIFACT_PATH
    if not (folder / "config.json").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise InvalidInput(f"{version.uri}: run {resolved.run_id} has no Hugging Face folder under "
                           f"'{MODEL_ARTIFACT_PATH}/' (log it with workbench.llm.log_llm)")
    if target.exists():
        shutil.rmtree(target)
    os.replace(folder, target)
    shutil.rmtree(staging, ignore_errors=True)
    return target, version


# ---------------------------------------------------------------------------------------------------------
# deploy, stop, roll


def deploy_llm(settings: Settings, model_uri: str, name: str = "llm", *, served_model_name: str = "",
               max_model_len: int = 512, dtype: str = "float32", gpu_memory_utilization: float | None = None,
               tensor_parallel_size: int = 1, max_num_seqs: int = 4, enforce_eager: bool = True,
               extra_args: Sequence[str] = (), port: int | None = None) -> LLMDeployment:
    """Serve a registered model version with vLLM; returns once the server answers.

    ``model_uri`` may be an alias (resolved once, here). A running deployment of the same name is an
    InvalidInput: roll it with :func:`roll_llm`, or stop it first.
    """
    check_llm_name(name)
    options = VLLMOptions(max_model_len=max_model_len, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                          tensor_parallel_size=tensor_parallel_size, max_num_seqs=max_num_seqs,
                          enforce_eager=enforce_eager, extra_args=tuple(extra_args))
    existing = _load(settings, name)
    if existing is not None and existing.running:
        raise InvalidInput(f"vLLM deployment {name!r} is already running ({existing.model_uri} at "
                           f"{existing.base_url}); roll it with roll_llm(settings, {name!r}, model_uri) or stop it "
                           "with stop_llm")
    check_vllm_environment(settings)
    model_dir, version = download_llm(settings, model_uri)
    served = served_model_name or version.name
    taken = {d.port for d in list_llm_deployments(settings) if d.running}
    chosen = port if port is not None else _free_port(settings, taken)
    if port is not None and not port_is_free(settings.host, port):
        raise InvalidInput(f"port {port} on {settings.host} is in use; pick another or leave port=None")
    record = _start_server(settings, name, model_dir, served, options, chosen)
    deployment = LLMDeployment(
        name=name, model_uri=version.uri, model_name=version.name, model_version=version.version,
        served_model_name=served, model_dir=str(model_dir), host=settings.host, port=chosen,
        options=asdict(options), process=asdict(record), created_at=datetime.now(UTC).isoformat(),
        history=list(existing.history + [existing.model_uri]) if existing else [], requested_uri=model_uri)
    _save(settings, deployment)
    return deployment


def stop_llm(settings: Settings, name: str, *, forget: bool = False) -> LLMDeployment:
    """Stop the deployment's vLLM server (by its recorded PID tree); ``forget`` also drops the record."""
    deployment = get_llm_deployment(settings, name)
    proc = deployment.record().process()
    if proc is not None:
        stop_tree(proc, grace_s=15)
    if forget:
        _record_path(settings, name).unlink(missing_ok=True)
    return deployment


def restart_llm(settings: Settings, name: str) -> LLMDeployment:
    """Start a stopped deployment again with the same model, options and port (when free)."""
    deployment = get_llm_deployment(settings, name)
    if deployment.running:
        return deployment
    options = VLLMOptions(**{**deployment.options, "extra_args": tuple(deployment.options.get("extra_args", ()))})
    port = deployment.port if port_is_free(deployment.host, deployment.port) else _free_port(settings, set())
    model_dir = Path(deployment.model_dir)
    if not (model_dir / "config.json").is_file():
        model_dir, _ = download_llm(settings, deployment.model_uri)
    record = _start_server(settings, name, model_dir, deployment.served_model_name, options, port)
    restarted = LLMDeployment(**{**asdict(deployment), "port": port, "process": asdict(record),
                                 "model_dir": str(model_dir)})
    _save(settings, restarted)
    return restarted


def roll_llm(settings: Settings, name: str, model_uri: str) -> LLMDeployment:
    """Serve another model version under ``name``: start it beside the old server, switch, stop the old one.

    If the new server fails to start, the old one keeps serving and the error says why.
    """
    current = get_llm_deployment(settings, name)
    options = VLLMOptions(**{**current.options, "extra_args": tuple(current.options.get("extra_args", ()))})
    model_dir, version = download_llm(settings, model_uri)
    taken = {d.port for d in list_llm_deployments(settings) if d.running}
    port = _free_port(settings, taken | {current.port})
    record = _start_server(settings, name, model_dir, current.served_model_name, options, port)
    rolled = LLMDeployment(
        name=name, model_uri=version.uri, model_name=version.name, model_version=version.version,
        served_model_name=current.served_model_name, model_dir=str(model_dir), host=settings.host, port=port,
        options=current.options, process=asdict(record), created_at=datetime.now(UTC).isoformat(),
        history=[*current.history, current.model_uri], requested_uri=model_uri)
    _save(settings, rolled)
    old = current.record().process()
    if old is not None:
        stop_tree(old, grace_s=15)
    return rolled


def rollback_llm(settings: Settings, name: str) -> LLMDeployment:
    """Roll back to the model version served before the current one."""
    current = get_llm_deployment(settings, name)
    if not current.history:
        raise InvalidInput(f"vLLM deployment {name!r} has served only {current.model_uri}: nothing to roll back to")
    previous = current.history[-1]
    rolled = roll_llm(settings, name, previous)
    trimmed = LLMDeployment(**{**asdict(rolled), "history": current.history[:-1]})
    _save(settings, trimmed)
    return trimmed


# ---------------------------------------------------------------------------------------------------------
# the same deployment for a cluster

KSERVE_API = "serving.kserve.io/v1beta1"


def kserve_llm_manifest(name: str, storage_uri: str, *, served_model_name: str, options: VLLMOptions | None = None,
                        namespace: str = "default", num_gpus: int = 1, num_cpus: float = 4, memory: str = "16Gi",
                        model_version: str = "") -> dict[str, Any]:
    """A KServe ``InferenceService`` for the Hugging Face runtime with its vLLM backend (validated, not applied).

    ``storage_uri`` is where the model folder lives (the MLflow artifact location of the version's
    ``model/`` folder, an ``s3://`` or ``gs://`` bucket on a cluster).
    """
    options = options or VLLMOptions(dtype="auto")
    args = [f"--model_name={served_model_name}", "--model_dir=/mnt/models", "--backend=vllm",
            f"--dtype={options.dtype}", f"--max-model-len={options.max_model_len}",
            f"--tensor-parallel-size={options.tensor_parallel_size}"]
    if options.gpu_memory_utilization is not None:
        args.append(f"--gpu-memory-utilization={options.gpu_memory_utilization}")
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": _cpu(num_cpus), "memory": memory},
                                            "limits": {"cpu": _cpu(num_cpus), "memory": memory}}
    if num_gpus:
        for key in resources:
            resources[key]["nvidia.com/gpu"] = str(num_gpus)
    manifest = {
        "apiVersion": KSERVE_API, "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "workbench", "workbench/model-version": model_version},
                     "annotations": {"workbench/openai-base-path": "/openai/v1"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "args": args,
                                         "storageUri": storage_uri, "resources": resources}}},
    }
    validate_kserve_llm_manifest(manifest)
    return manifest


def _cpu(value: float) -> str:
    return f"{int(round(value * 1000))}m"


def validate_kserve_llm_manifest(manifest: Mapping[str, Any]) -> None:
    """InvalidInput naming the first field KServe's Hugging Face runtime would reject."""
    from workbench.serving.kserve import check_common_fields

    model = check_common_fields(manifest)
    if (model.get("modelFormat") or {}).get("name") != "huggingface":
        raise InvalidInput("InferenceService spec.predictor.model.modelFormat.name: must be 'huggingface' (the "
                           "runtime with the vLLM backend)")
    if not any(str(a).startswith("--model_name=") for a in model.get("args") or []):
        raise InvalidInput("InferenceService spec.predictor.model.args: must name the served model (--model_name=…)")


def ray_serve_llm_config(name: str, model_source: str, *, served_model_name: str, options: VLLMOptions | None = None,
                         accelerator_type: str | None = "L4", min_replicas: int = 1, max_replicas: int = 1,
                         route_prefix: str = "/") -> dict[str, Any]:
    """A Ray Serve config file (``serve deploy``) running ``ray.serve.llm:build_openai_app`` for one model.

    For clusters where ``ray[llm]`` (and so the CUDA build of vLLM) is installed; not used locally.
    """
    options = options or VLLMOptions(dtype="auto")
    if min_replicas < 0 or max_replicas < max(1, min_replicas):
        raise InvalidInput(f"replicas: need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                           f"{min_replicas}..{max_replicas}")
    engine = options.engine_kwargs()
    llm_config: dict[str, Any] = {
        "model_loading_config": {"model_id": served_model_name, "model_source": model_source},
        "engine_kwargs": engine,
        "deployment_config": {"autoscaling_config": {"min_replicas": min_replicas, "max_replicas": max_replicas}},
    }
    if accelerator_type:
        llm_config["accelerator_type"] = accelerator_type
    config = {"applications": [{"name": check_llm_name(name), "route_prefix": route_prefix,
                                "import_path": "ray.serve.llm:build_openai_app",
                                "args": {"llm_configs": [llm_config]}}]}
    yaml.safe_load(yaml.safe_dump(config))
    return config


def write_yaml(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write a manifest or config as YAML (validated by whoever built it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    return target
