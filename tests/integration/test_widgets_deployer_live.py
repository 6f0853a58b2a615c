"""The deployer against the real Ray head and MLflow server (the session's ``services``), headless.

Two versions of a small binary pyfunc model (``monitoring_fixtures.register_binary_model``: signature
``amount``/``colour``, the workbench metadata the training stage writes) are registered, v1 ``champion``
and v2 ``challenger``. Through the widget's own controls: the form picks the model by alias, a GPU request
on this CPU-only cluster is refused before anything is deployed, the deploy runs in the background and
ends with the deployment healthy in the table serving v1; a request typed into the form built from the
signature is answered with what ``mlflow.pyfunc`` predicts for the same row here; a bad value is a
readable message; roll to v2, roll back to v1 (each seen in the table and in Serve's own account), and
delete with its confirm step. Waiting is on the operations' ends, never a fixed sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from monitoring_fixtures import register_binary_model

from workbench.config import Settings
from workbench.registry import CHALLENGER, CHAMPION, set_alias
from workbench.serving import delete_deployment, get_deployment, list_deployments
from workbench.training.capacity import resource_holders
from workbench.widgets.deployer import Deployer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
OP_TIMEOUT_S = 1200.0  # a replica starts in ~20 s on a quiet machine; far longer on a crowded one
THRESHOLD = 0.6  # the fixture's model metadata: label = score >= 0.6


@dataclass(frozen=True)
class Registered:
    settings: Settings
    model: str
    uris: dict[str, str]  # version -> models:/<name>/<version>


@pytest.fixture(scope="module")
def registered(services: Settings) -> Registered:
    folder = services.state_dir / "dpw-deployer" / uuid.uuid4().hex[:10]
    name = f"dpw-binary-{uuid.uuid4().hex[:6]}"
    first = register_binary_model(services, folder / "v1", name, "dpw-deployer")
    second = register_binary_model(services, folder / "v2", name, "dpw-deployer")
    assert (first.version, second.version) == ("1", "2")
    set_alias(services, name, CHAMPION, first.version)
    set_alias(services, name, CHALLENGER, second.version)
    return Registered(services, name, {"1": first.uri, "2": second.uri})


@pytest.fixture()
def deployment_name(services: Settings) -> Iterator[str]:
    name = f"dpw-{uuid.uuid4().hex[:8]}"
    yield name
    if name in {d.name for d in list_deployments(services)}:  # only our own dpw- deployment
        delete_deployment(services, name)


def expected(uri: str, amount: float, colour: str) -> float:
    """What the registered version predicts for one row, computed here with MLflow alone."""
    model = mlflow.pyfunc.load_model(uri)
    return float(model.predict(pd.DataFrame({"amount": [amount], "colour": [colour]}))[0])


def test_deploy_try_roll_rollback_delete(registered: Registered, deployment_name: str) -> None:
    settings, name = registered.settings, deployment_name
    mlflow.set_tracking_uri(settings.mlflow_uri)
    widget = Deployer(settings=settings, live=False, timeout_s=OP_TIMEOUT_S)
    try:
        assert widget.error == "", widget.error
        assert registered.model in widget.model_pick.options
        widget.set_form(model=registered.model, version=CHAMPION, name=name, num_cpus=0.25)
        labels = dict((v, k) for k, v in widget.version_pick.options)
        assert labels[CHAMPION] == "champion → v1" and labels[CHALLENGER] == "challenger → v2"
        assert widget.verdict is not None and widget.verdict.ok, widget.verdict_html.value
        assert widget.verdict.uri == f"models:/{registered.model}@champion"

        # a GPU on this CPU-only cluster: refused before anything reaches Serve
        widget.set_form(num_gpus=1)
        assert "the cluster has 0: set GPUs to 0" in widget.verdict_html.value
        assert widget.deploy() is None and "not deployed" in widget.error
        assert name not in {d.name for d in list_deployments(settings)}
        widget.set_form(num_gpus=0)

        progress: list[str] = []
        widget.progress.observe(lambda change: progress.append(change["new"]), "value")
        op = widget.deploy()
        assert op is not None, widget.error
        assert not op.finished.is_set() or op.ok  # deploy() returned while the deploy ran in its thread
        assert widget.wait_idle(OP_TIMEOUT_S), "deploy did not end"
        assert op.ok, op.error
        row = widget.row(name)
        assert row is not None and (row.health, row.version, row.model) == ("healthy", "1", registered.model)
        assert f"data-deployment='{name}'" in widget.table.value and "data-health='healthy'" in widget.table.value
        assert get_deployment(settings, name).model_version == "1"
        # Ray's state API names the replica, as a waiting job's note shows it, with the CPUs asked for
        replicas = [h for h in resource_holders(settings) if h.who.startswith(f"Serve replica {name}/")]
        assert [(h.actors, h.cpus) for h in replicas] == [(1, 0.25)], replicas  # one replica of num_cpus=0.25
        assert "deploying" in widget.progress.value and "done in" in widget.progress.value
        # while it ran, the progress line followed Serve's own status of the new application
        assert any(f"deploying {name}: " in p and ("DEPLOYING" in p or "RUNNING" in p) for p in progress), progress

        # the request form comes from the served model's signature
        assert widget.selected is not None and widget.selected.name == name
        assert [f.name for f in widget.fields if not f.optional_extra] == ["amount", "colour"]
        widget.set_fields(amount="31.5", colour="red")
        sent = widget.send_request()
        assert sent is not None and widget.wait_idle(120) and sent.ok, sent.error if sent else widget.error
        score = expected(registered.uris["1"], 31.5, "red")
        assert widget.last_answer is not None
        assert widget.last_answer["score"] == pytest.approx(score, rel=1e-6)
        assert widget.last_answer["label"] == int(score >= THRESHOLD)
        assert widget.last_answer["model_version"] == "1"
        assert "score" in widget.answer.value and "wb-deploy-answer-ok" in widget.answer.value

        # a bad value: a readable message in the widget, nothing sent
        widget.set_fields(amount="lots")
        bad = widget.send_request()
        assert bad is not None and widget.wait_idle(60) and not bad.ok
        assert "amount: 'lots' is not a number" in widget.error
        assert "amount: &#x27;lots&#x27; is not a number" in widget.answer.value
        assert "Traceback" not in widget.message.value + widget.answer.value

        # roll to v2 (the challenger), in place
        assert "2" in [v for _, v in widget.roll_pick.options]
        widget.roll_pick.value = "2"
        rolled = widget.roll_selected()
        assert rolled is not None and widget.wait_idle(OP_TIMEOUT_S) and rolled.ok, rolled.error if rolled else ""
        row = widget.row(name)
        assert row is not None and (row.health, row.version, row.previous) == ("healthy", "2", ("1",))
        assert "data-version='2'" in widget.table.value
        assert get_deployment(settings, name).applied_version == "2"
        widget.set_fields(amount="8", colour="blue")
        sent = widget.send_request()
        assert sent is not None and widget.wait_idle(120) and sent.ok, sent.error if sent else ""
        assert widget.last_answer is not None and widget.last_answer["model_version"] == "2"
        assert widget.last_answer["score"] == pytest.approx(expected(registered.uris["2"], 8.0, "blue"), rel=1e-6)

        # roll back to v1
        back = widget.rollback_selected()
        assert back is not None and widget.wait_idle(OP_TIMEOUT_S) and back.ok, back.error if back else ""
        row = widget.row(name)
        assert row is not None and (row.health, row.version, row.previous) == ("healthy", "1", ())
        assert get_deployment(settings, name).applied_version == "1"

        snapshot = widget.snapshot_html()
        assert name in snapshot and "Last answer" in snapshot

        # delete: the first click only asks
        widget.delete_button.click()
        assert widget.confirm_box.layout.display == "" and widget.pending_delete == name
        assert name in {d.name for d in list_deployments(settings)}
        widget.cancel_button.click()
        assert widget.confirm_box.layout.display == "none" and widget.pending_delete == ""
        widget.delete_button.click()
        widget.confirm_button.click()
        assert widget.operation is not None and widget.wait_idle(300) and widget.operation.ok, widget.error
        assert name not in {d.name for d in list_deployments(settings)}
        assert widget.row(name) is None and f"data-deployment='{name}'" not in widget.table.value
        assert widget.error == "" and f"deleted {name}" in widget.message.value
    finally:
        widget.close()


VLLM_PORT_ABOVE_SERVE = 560  # 27560 (+ offset): outside Ray's worker range, apart from test_llm_vllm's 27500


@pytest.fixture(scope="module")
def llm_settings(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from workbench.serving import list_llm_deployments, stop_llm

    state = tmp_path_factory.mktemp("dpw-llm-state")
    settings = services.replace(state_dir=state, vllm_port=services.serve_port + VLLM_PORT_ABOVE_SERVE,
                                experiment="dpw-llm")
    yield settings
    for deployment in list_llm_deployments(settings):  # this state folder holds only ours
        stop_llm(settings, deployment.name, forget=True)


def test_llm_deploys_on_vllm_and_chat_streams(llm_settings: Settings, tmp_path: Path) -> None:
    from workbench.errors import NotFound
    from workbench.llm import log_llm, make_tiny_gpt2
    from workbench.serving import chat, get_llm_deployment
    from workbench.widgets._deployer_model import DeployerModel

    missing = DeployerModel(llm_settings).vllm_missing()
    if missing:
        pytest.skip(f"vLLM is not installed here: {missing}")
    model_name = f"dpw-tiny-{uuid.uuid4().hex[:6]}"
    log_llm(llm_settings, make_tiny_gpt2(tmp_path / "tiny", seed=0), model_name=model_name, experiment="dpw-llm")
    name = f"dpw-chat-{uuid.uuid4().hex[:6]}"
    widget = Deployer(settings=llm_settings, live=False, model=model_name, version=CHAMPION, name=name,
                      max_model_len=256, chat_max_tokens=24)
    try:
        assert widget.target.value == "vllm"  # chosen from the version's kind (a language model)
        assert widget.verdict is not None and widget.verdict.ok, widget.verdict_html.value
        assert widget.replicas.layout.display == "none" and widget.max_len.layout.display == ""
        op = widget.deploy()
        assert op is not None, widget.error
        assert widget.wait_idle(OP_TIMEOUT_S) and op.ok, op.error
        row = widget.row(name)
        assert row is not None and (row.target, row.health, row.version) == ("vllm", "healthy", "1")
        assert widget.chat_box.layout.display == "" and widget.request_box.layout.display == "none"

        drawn: list[str] = []
        widget.chat_log.observe(lambda change: drawn.append(change["new"]), "value")
        widget.chat_input.value = "hello there"
        sent = widget.send_chat()
        assert sent is not None and widget.wait_idle(300) and sent.ok, sent.error if sent else widget.error
        assert widget.chat_state is not None
        answer = widget.chat_state.turns[-1].content
        assert widget.chat_state.turns[-1].role == "assistant" and answer
        assert len([d for d in drawn if "▌" in d]) >= 2, "the answer was not drawn as it streamed"
        # the same question through the serving API, not streamed, greedy: the same answer
        assert chat(llm_settings, name, "hello there", max_tokens=24).text == answer

        widget.delete_button.click()
        widget.confirm_button.click()
        assert widget.operation is not None and widget.wait_idle(120) and widget.operation.ok, widget.error
        assert widget.row(name) is None
        with pytest.raises(NotFound):
            get_llm_deployment(llm_settings, name)
    finally:
        widget.close()
