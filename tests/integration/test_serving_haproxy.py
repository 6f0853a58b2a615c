"""The "haproxy" Serve ingress (``Settings.serve_ingress``): Ray's high-throughput mode, on a second Ray head.

The session's Ray head runs Serve's default Python proxy (test_serving.py covers it in depth). Here a head
started with ``serve_ingress="haproxy"`` (HAProxy in front, replicas answering HTTP themselves) must keep the
same promises: correct scores, 4xx for bad payloads, every answer logged once under load, a roll with zero
failed requests, and `down` leaves no HAProxy behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
import requests
from serving_fixtures import Load, ServedModel, build_served_model, expected_scores, instances_from

from workbench.config import Settings
from workbench.services import ServiceManager
from workbench.services.processes import ProcessRecord, is_loopback, port_is_free
from workbench.serving import (
    Resources,
    delete_deployment,
    deploy,
    endpoint_url,
    get_deployment,
    list_deployments,
    predict,
    read_predictions,
    serve_details,
    update_deployment,
)

pytestmark = pytest.mark.integration

NAME = "fraud-hx"
SHIFT = 100  # this head's ports sit 100 above the session head's


@pytest.fixture(scope="module")
def head(services: Settings) -> Iterator[tuple[Settings, ServiceManager]]:
    """A second Ray head in the "haproxy" ingress, sharing the session's MLflow server."""
    settings = services.replace(
        state_dir=services.state_dir / "hx", serve_ingress="haproxy",
        ray_port=services.ray_port + SHIFT, ray_dashboard_port=services.ray_dashboard_port + SHIFT,
        ray_metrics_port=services.ray_metrics_port + SHIFT, serve_port=services.serve_port + SHIFT,
        haproxy_stats_port=services.ray_dashboard_port + SHIFT + 10,
        haproxy_metrics_port=services.ray_metrics_port + SHIFT + 10)
    manager = ServiceManager(settings)
    manager.up(("ray",))
    yield settings, manager
    manager.down(("ray",))


@pytest.fixture(scope="module")
def model(head: tuple[Settings, ServiceManager], tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    served = build_served_model(head[0], tmp_path_factory.mktemp("hx"))
    if NAME in [d.name for d in list_deployments(served.settings)]:  # a head an interrupted run left behind
        delete_deployment(served.settings, NAME)
    deploy(served.settings, served.champion_uri, NAME, resources=Resources(replicas=2, num_cpus=0.25),
           progress=False)
    return served


def _haproxy_processes(settings: Settings) -> list[psutil.Process]:
    marker = str(settings.haproxy_dir) + "/"
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if "haproxy" in (proc.info["name"] or "") and any(marker in a for a in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_haproxy_answers_on_the_serve_port_with_the_models_scores(head: tuple[Settings, ServiceManager],
                                                                  model: ServedModel) -> None:
    settings = head[0]
    assert _haproxy_processes(settings), f"no HAProxy runs with its files under {settings.haproxy_dir}"
    assert not port_is_free(settings.host, settings.serve_port)  # HAProxy listens where the proxy would
    batch = instances_from(model, 20, seed=1, prefix="hx-match")
    body = predict(model.settings, NAME, batch)
    assert body["model_version"] == model.versions[0]
    expected = expected_scores(model, batch, model.versions[0])
    np.testing.assert_allclose([p["score"] for p in body["predictions"]], expected, rtol=1e-9)
    log = read_predictions(model.settings, NAME).set_index("request_id")
    assert [log.at[i["request_id"], "score"] for i in batch] == pytest.approx(expected.tolist(), rel=1e-9)


def _own_listening(proc: psutil.Process) -> set[tuple[str, int]]:
    try:
        return {(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return set()


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return str(proc.pid)


def test_haproxy_and_every_ray_process_listen_on_loopback_only(head: tuple[Settings, ServiceManager],
                                                               model: ServedModel) -> None:
    """Ray's template binds HAProxy's stats and Prometheus ports on every interface; the launcher moves them.
    Checked on the sockets themselves."""
    settings = head[0]
    record = ProcessRecord.load(settings.services_dir, "ray")
    assert record is not None and (proc := record.process()) is not None
    wanted = {settings.serve_port, settings.haproxy_stats_port, settings.haproxy_metrics_port}
    # HAProxy reloads (a new process, then the old one leaves) whenever Serve's routes or replicas change; a
    # snapshot taken mid-reload can miss its ports, so look until one holds them (what any look saw exposed counts)
    deadline = time.monotonic() + 60
    owners: dict[tuple[str, int], list[str]] = {}
    while True:
        members = [proc, *proc.children(recursive=True), *_haproxy_processes(settings)]
        addresses = set().union(*(_own_listening(p) for p in members))
        exposed = sorted(a for a in addresses if not is_loopback(a[0]))
        owners.update({a: [_describe(p) for p in members if a in _own_listening(p)] for a in exposed})
        if wanted <= {port for _, port in addresses} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Known, and not ours to fix: Ray 2.60 starts every Serve replica's inter-deployment gRPC server on
    # "[::]:0" (hard-coded in ray/serve/_private/replica.py; ray-project/ray#64544, #64623 adds only a
    # port range). Allowed here only as exactly that: one ephemeral port per replica process, nothing else.
    replica_grpc = {a for a, who in owners.items()
                    if len(who) == 1 and "ServeReplica" in who[0] and a[0] in ("::", "0.0.0.0") and a[1] >= 32768}
    assert {a: who for a, who in owners.items() if a not in replica_grpc} == {}, "listening beyond loopback"
    replicas = [p for p in members if "ServeReplica" in _describe(p)]
    assert len(replica_grpc) <= len(replicas)
    ports = {port for _, port in addresses}
    assert wanted <= ports, f"HAProxy's ports {sorted(wanted - ports)} are held by none of {len(members)} processes"
    stats = requests.get(f"http://127.0.0.1:{settings.haproxy_metrics_port}/metrics", timeout=10)
    assert stats.status_code == 200 and "haproxy_" in stats.text  # the exporter answers, on loopback


def test_a_bad_payload_is_a_422_naming_the_field(model: ServedModel) -> None:
    response = requests.post(endpoint_url(model.settings, NAME), timeout=30,
                             json={"instances": [{"user_id": 1, "merchant_id": 2, "amount": -5}]})
    assert response.status_code == 422
    assert response.json()["field"] == "instances[0].amount"


def test_roll_under_load_fails_no_request_and_logs_every_answer_once(model: ServedModel) -> None:
    load = Load(model, NAME, concurrency=8, prefix=f"hx-roll-{uuid.uuid4().hex[:6]}")
    try:
        load.wait_for(200)
        rolled = update_deployment(model.settings, NAME, model.version_uri(model.versions[1]), progress=False)
        assert rolled.model_version == model.versions[1]
        seen = len(load.answers)
        load.wait_for(seen + 200)
    finally:
        load.finish()
    assert load.failures == []
    assert {version for _, version in load.answers.values()} == set(model.versions)
    log = read_predictions(model.settings, NAME)
    mine = log[log.request_id.str.startswith(load.prefix)]
    assert sorted(mine.request_id) == sorted(load.answers)  # every answer logged, exactly once
    by_id = mine.set_index("request_id")
    assert all(str(by_id.at[rid, "model_version"]) == version for rid, (_, version) in load.answers.items())
    assert get_deployment(model.settings, NAME).model_version == model.versions[1]


def test_scaling_down_under_load_fails_no_request_and_replicas_drain_for_the_configured_time(
        model: ServedModel) -> None:
    """Scaling 2 -> 1 stops a replica while clients send: HAProxy drops it from its routes within the drain
    window, so no request fails, and the resources-only roll returns once one replica is left. The window
    is Settings.serve_drain_s, which each replica process reads as Ray's
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S (Ray's own default is 30 s)."""
    settings = model.settings
    version = get_deployment(settings, NAME).model_version
    replicas = [r for d in serve_details(settings)["applications"][NAME]["deployments"].values()
                for r in d["replicas"]]
    assert len(replicas) == 2
    for replica in replicas:
        env = psutil.Process(replica["pid"]).environ()
        assert env.get("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S") == str(settings.serve_drain_s) == "10.0"
    load = Load(model, NAME, concurrency=4, prefix=f"hx-drain-{uuid.uuid4().hex[:6]}")
    try:
        load.wait_for(100)
        scaled = update_deployment(settings, NAME, resources=Resources(replicas=1, num_cpus=0.25), progress=False,
                                   timeout_s=120)
        assert scaled.replicas == {"RUNNING": 1} and scaled.model_version == version
        load.wait_for(len(load.answers) + 100)
    finally:
        load.finish()
    assert load.failures == []


def test_down_leaves_no_haproxy_behind(head: tuple[Settings, ServiceManager], model: ServedModel) -> None:
    settings, manager = head
    assert _haproxy_processes(settings)
    assert manager.down(("ray",)) == ["ray"]
    assert _haproxy_processes(settings) == []
    for port in (settings.serve_port, settings.haproxy_stats_port, settings.haproxy_metrics_port):
        assert port_is_free(settings.host, port), f"port {port} is still taken after down"
