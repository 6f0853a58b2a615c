"""The deployer's model without services: the form's values, the check against a given cluster, the request
form's parsing, the background operation; and the widget opening with no services (a message, no raise)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry import ModelVersionInfo
from workbench.training.capacity import ClusterCapacity
from workbench.widgets._deployer_model import (
    RAY_SERVE,
    VLLM,
    DeployerModel,
    DeployForm,
    Operation,
    RequestField,
    build_instance,
    default_name,
    parse_value,
)

CPU_ONLY = ClusterCapacity(cpus_total=4, cpus_free=3, gpus_total=0, gpus_free=0, memory_total=8e9, memory_free=4e9)
TWO_GPUS = ClusterCapacity(cpus_total=16, cpus_free=16, gpus_total=2, gpus_free=1, memory_total=8e9, memory_free=8e9)


def version(n: str = "3", aliases: tuple[str, ...] = ("champion",), llm: bool = False) -> ModelVersionInfo:
    return ModelVersionInfo(name="m", version=n, aliases=aliases, run_id="r", source="s", model_id="", status="READY",
                            created_at=None, tags={"workbench.kind": "llm"} if llm else {})


def test_form_uri_and_name() -> None:
    assert DeployForm(model="m", version="champion").model_uri() == "models:/m@champion"
    assert DeployForm(model="m", version="4").model_uri() == "models:/m/4"
    assert DeployForm(model="m", version="").model_uri() == "models:/m/latest"
    assert DeployForm(model="My Model_v2").deployment_name == "my-model-v2"
    assert DeployForm(model="m", name=" x ").deployment_name == "x"
    assert default_name("___") == "model"
    with pytest.raises(InvalidInput, match="model: choose"):
        DeployForm().model_uri()


def test_resources_errors_name_the_value() -> None:
    with pytest.raises(InvalidInput, match="replicas must be >= 1"):
        DeployForm(model="m", replicas=0).resources()
    with pytest.raises(InvalidInput, match="min_replicas <= max_replicas"):
        DeployForm(model="m", replicas=3, autoscale=True, max_replicas=2).resources()
    auto = DeployForm(model="m", replicas=1, autoscale=True, max_replicas=3).resources().autoscaling
    assert auto is not None and (auto.min_replicas, auto.max_replicas) == (1, 3)


def test_check_refuses_what_the_cluster_cannot_meet(settings: Settings) -> None:
    model = DeployerModel(settings)
    v = version()
    ok = model.check(DeployForm(model="m", version="champion"), CPU_ONLY, version=v, existing=set())
    assert ok.ok, ok.message()
    assert ok.uri == "models:/m@champion" and ok.name == "m"

    gpu = model.check(DeployForm(model="m", num_gpus=1), CPU_ONLY, version=v, existing=set())
    assert not gpu.ok
    assert "1 replica × 1 GPU = 1 GPUs, the cluster has 0: set GPUs to 0" in gpu.message()

    cpus = model.check(DeployForm(model="m", replicas=3, num_cpus=2), CPU_ONLY, version=v, existing=set())
    assert not cpus.ok and "3 replicas × 2 CPU = 6 CPUs, the cluster has 4" in cpus.message()

    waits = model.check(DeployForm(model="m", replicas=2, num_gpus=1), TWO_GPUS, version=v, existing=set())
    assert waits.ok and "1 of 2 GPUs are free now" in waits.message()

    taken = model.check(DeployForm(model="m"), CPU_ONLY, version=v, existing={"m"})
    assert not taken.ok and "a deployment named 'm' exists" in taken.message()

    with pytest.raises(InvalidInput, match="deployment name"):
        model.check(DeployForm(model="m", name="Bad_Name"), CPU_ONLY, version=v, existing=set())


def test_check_matches_target_and_model_kind(settings: Settings, tmp_path: Path) -> None:
    no_vllm = DeployerModel(settings.replace(vllm_python=str(tmp_path / "absent" / "python")))
    llm_on_serve = no_vllm.check(DeployForm(model="m", target=RAY_SERVE), CPU_ONLY, version=version(llm=True),
                                 existing=set())
    assert not llm_on_serve.ok and "is a language model: choose vLLM" in llm_on_serve.message()
    pyfunc_on_vllm = no_vllm.check(DeployForm(model="m", target=VLLM), CPU_ONLY, version=version(), existing=set())
    assert not pyfunc_on_vllm.ok and "choose Ray Serve" in pyfunc_on_vllm.message()
    llm = no_vllm.check(DeployForm(model="m", target=VLLM), CPU_ONLY, version=version(llm=True), existing=set())
    assert not llm.ok and "vLLM is not installed here" in llm.message() and "make llm" in llm.message()
    assert no_vllm.vllm_missing()


def test_pick_a_version_by_number_alias_or_latest() -> None:
    versions = [version("3", ("champion",)), version("2", ("challenger",)), version("1", ())]
    assert DeployerModel.pick(versions, "latest") is versions[0]
    assert DeployerModel.pick(versions, "challenger") is versions[1]
    assert DeployerModel.pick(versions, "1") is versions[2]
    assert DeployerModel.pick(versions, "9") is None


def test_form_values_become_typed_json() -> None:
    fields = [RequestField("amount", "double"), RequestField("n", "long"), RequestField("ok", "boolean"),
              RequestField("colour", "string", required=False, nullable=True), RequestField("user", "key"),
              RequestField("request_id", "string", False, False, True)]
    got = build_instance(fields, {"amount": "12.5", "n": "3", "ok": "yes", "colour": "", "user": "42",
                                  "request_id": ""})
    assert got == {"amount": 12.5, "n": 3, "ok": True, "colour": None, "user": 42}
    assert parse_value(RequestField("user", "key"), "u-7") == "u-7"
    with pytest.raises(InvalidInput, match=r"amount: 'abc' is not a number"):
        build_instance(fields, {"amount": "abc", "n": "3", "ok": "1", "user": "1"})
    with pytest.raises(InvalidInput, match=r"n: '2.5' is not a whole number"):
        build_instance(fields, {"amount": "1", "n": "2.5", "ok": "1", "user": "1"})
    with pytest.raises(InvalidInput, match=r"fill in amount, user"):
        build_instance(fields, {"n": "1", "ok": "no"})
    with pytest.raises(InvalidInput, match=r"is not a number"):
        parse_value(RequestField("x", "double"), "nan")


def test_operation_runs_in_a_thread_and_keeps_errors() -> None:
    release = threading.Event()
    seen: list[str] = []
    op = Operation("slow", lambda: (release.wait(5), 7)[1], watch=lambda: "halfway", poll_s=0.05,
                   on_change=lambda o: seen.append(o.phase if not o.done.is_set() else "done")).start()
    assert not op.done.is_set()  # start() returned while the action still runs
    deadline = threading.Event()
    while "halfway" not in seen and not deadline.wait(0.05):
        pass
    release.set()
    assert op.wait(5) and op.ok and op.result == 7
    assert seen[0] == "halfway" and seen[-1] == "done"
    assert "done in" in op.text()

    def fail() -> None:
        raise NotFound("no model 'x'")

    bad = Operation("bad", fail).start()
    assert bad.wait(5) and not bad.ok and bad.error == "no model 'x'"
    odd = Operation("odd", lambda: 1 / 0).start()
    assert odd.wait(5) and odd.error.startswith("unexpected ZeroDivisionError")


def test_widget_without_services_shows_a_message(settings: Settings) -> None:
    pytest.importorskip("ipywidgets")
    from workbench.widgets.deployer import Deployer

    ports = {}
    for key in ("mlflow_port", "ray_dashboard_port", "serve_port"):
        with socket.socket() as s:  # a port nothing listens on: no MLflow, no Ray
            s.bind(("127.0.0.1", 0))
            ports[key] = s.getsockname()[1]
    offline = settings.replace(request_timeout_s=2.0, **ports)
    widget = Deployer(settings=offline, live=False)
    assert widget.error  # MLflow / Ray not answering: said in the widget, not raised
    assert "Traceback" not in widget.message.value
    snapshot = widget.snapshot_html()
    assert "Deployments" in snapshot and "no deployments yet" in snapshot
    assert widget.deploy() is None and widget.error
    widget.set_form(target=VLLM)  # vLLM's environment is absent from this project folder: said beside the target
    assert "vLLM is not installed" in widget.target_note.value and "make llm" in widget.target_note.value
    assert widget.replicas.layout.display == "none" and widget.max_len.layout.display == ""
    bundle, _ = widget._repr_mimebundle_()
    assert bundle["text/plain"] == "Deployer(deployments=[])" and "Deployments" in bundle["text/html"]
    widget.close()

    from workbench.widgets.app import Workbench

    app = Workbench(settings=offline, tabs=["Deploy"])  # the app's Deploy tab is this widget
    assert isinstance(app.widget("Deploy"), Deployer)
    app.widget("Deploy").close()


def test_done_shows_after_the_redraw_and_a_click_then_is_taken(settings: Settings) -> None:
    """CI saw a click on "roll back" right after "done in" refused as "still busy": the roll's redraw still ran.

    Now the final line is drawn only after the action's follow-up (``then``), and a click while an ended action
    still redraws waits for it instead of being refused.
    """
    pytest.importorskip("ipywidgets")
    from workbench.widgets.deployer import Deployer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    widget = Deployer(settings=settings.replace(request_timeout_s=2.0, mlflow_port=port, ray_dashboard_port=port,
                                                serve_port=port), live=False)
    in_then, release = threading.Event(), threading.Event()
    progress_in_then: list[str] = []

    def then(_op: Operation) -> None:
        progress_in_then.append(widget.progress.value)
        in_then.set()
        release.wait(10)

    first = widget._start("rolling a to 2", lambda: "rolled", then=then)
    assert first is not None and in_then.wait(10)
    assert first.done.is_set() and not first.finished.is_set()
    assert "done in" not in progress_in_then[0]  # not yet drawn while the follow-up runs
    threading.Timer(0.2, release.set).start()  # the redraw ends while the next click waits for it
    second = widget._start("rolling a back", lambda: "back")
    assert second is not None and first.finished.is_set()
    assert second.wait(10) and second.ok and "rolling a back: done in" in widget.progress.value
    assert "still busy" not in widget.message.value
    widget.close()
