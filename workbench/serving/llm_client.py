"""Talking to a vLLM deployment through the official ``openai`` client, with vLLM's errors made actionable.

vLLM answers a bad request (a prompt longer than the context, an unknown model name, a bad parameter)
with a 4xx and a JSON message; here that becomes :class:`~workbench.errors.InvalidInput` carrying vLLM's
own words, and a server that does not answer becomes :class:`~workbench.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from workbench.config import Settings
from workbench.errors import InvalidInput, ServiceUnavailable
from workbench.serving.vllm import LLMDeployment, get_llm_deployment

Message = Mapping[str, str]


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", exc))


@contextmanager
def llm_errors(deployment: LLMDeployment | str) -> Iterator[None]:
    """Turn the openai client's errors into workbench errors naming the deployment."""
    import openai

    where = (f"vLLM deployment {deployment.name!r} at {deployment.base_url}" if isinstance(deployment, LLMDeployment)
             else f"vLLM at {deployment}")
    try:
        yield
    except openai.APIStatusError as exc:
        code = exc.status_code
        text = f"{where} refused the request (HTTP {code}): {_status_message(exc)}"
        if 400 <= code < 500:
            raise InvalidInput(text) from exc
        raise ServiceUnavailable(text) from exc
    except openai.APITimeoutError as exc:
        raise ServiceUnavailable(f"{where} did not answer in time; is it overloaded? (see its log)") from exc
    except openai.APIConnectionError as exc:
        raise ServiceUnavailable(f"{where} is not answering: check llm deployment status (list_llm_deployments) "
                                 "or restart it (restart_llm)") from exc


def llm_client(settings: Settings, name: str, *, timeout_s: float | None = None, max_retries: int = 0) -> Any:
    """An ``openai.OpenAI`` client bound to the deployment's base URL, sending ``settings.vllm_api_key`` when
    one is configured (vLLM then refuses requests without it)."""
    import openai

    deployment = get_llm_deployment(settings, name)
    return openai.OpenAI(base_url=deployment.base_url, api_key=settings.vllm_api_key or "not-needed",
                         timeout=timeout_s if timeout_s is not None else max(settings.request_timeout_s, 120.0),
                         max_retries=max_retries)


@dataclass(frozen=True)
class ChatResult:
    """One answer, with its token counts and the client-side timings."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    time_to_first_token_s: float | None = None
    model: str = ""
    chunks: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.latency_s if self.latency_s > 0 else float("nan")


def _check_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(messages, str) or not messages:
        raise InvalidInput("messages must be a non-empty list of {'role', 'content'} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or \
                m.get("role") not in ("system", "user", "assistant"):
            raise InvalidInput(f"messages[{i}] must be {{'role': 'system'|'user'|'assistant', 'content': str}}, "
                               f"got {m!r}")
        out.append({"role": str(m["role"]), "content": str(m["content"])})
    return out


def chat(settings: Settings, name: str, messages: Sequence[Message] | str, *, max_tokens: int = 64,
         temperature: float = 0.0, stream: bool = False, model: str | None = None, client: Any = None,
         on_text: Callable[[str], Any] | None = None, **extra: Any) -> ChatResult:
    """One chat completion from deployment ``name`` (a plain string is one user message).

    ``stream=True`` reads the answer as it is generated and measures the time to the first token;
    ``on_text(answer_so_far)`` is called for every piece, so a chat box can draw it as it arrives.
    ``model`` overrides the served model name (to see how vLLM answers a wrong one).
    """
    deployment = get_llm_deployment(settings, name)
    msgs = _check_messages([{"role": "user", "content": messages}] if isinstance(messages, str) else messages)
    client = client or llm_client(settings, name)
    served = model or deployment.served_model_name
    began = time.perf_counter()
    with llm_errors(deployment):
        if not stream:
            response = client.chat.completions.create(model=served, messages=msgs, max_tokens=max_tokens,
                                                      temperature=temperature, **extra)
            elapsed = time.perf_counter() - began
            choice = response.choices[0]
            usage = response.usage
            return ChatResult(text=choice.message.content or "", finish_reason=str(choice.finish_reason),
                              prompt_tokens=usage.prompt_tokens if usage else 0,
                              completion_tokens=usage.completion_tokens if usage else 0, latency_s=elapsed,
                              model=response.model, raw=response.model_dump())
        pieces: list[str] = []
        first: float | None = None
        finish = ""
        prompt_tokens = completion_tokens = chunks = 0
        for chunk in client.chat.completions.create(model=served, messages=msgs, max_tokens=max_tokens,
                                                    temperature=temperature, stream=True,
                                                    stream_options={"include_usage": True}, **extra):
            chunks += 1
            if chunk.usage:
                prompt_tokens, completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if first is None:
                        first = time.perf_counter() - began
                    pieces.append(choice.delta.content)
                    if on_text is not None:
                        on_text("".join(pieces))
                if choice.finish_reason:
                    finish = str(choice.finish_reason)
        return ChatResult(text="".join(pieces), finish_reason=finish, prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens, latency_s=time.perf_counter() - began,
                          time_to_first_token_s=first, model=served, chunks=chunks)


def complete(settings: Settings, name: str, prompt: str, *, max_tokens: int = 32, temperature: float = 0.0,
             model: str | None = None, client: Any = None, **extra: Any) -> ChatResult:
    """One plain text completion (``/v1/completions``) from deployment ``name``."""
    if not isinstance(prompt, str) or not prompt:
        raise InvalidInput(f"prompt must be a non-empty string, got {prompt!r}")
    deployment = get_llm_deployment(settings, name)
    client = client or llm_client(settings, name)
    began = time.perf_counter()
    with llm_errors(deployment):
        response = client.completions.create(model=model or deployment.served_model_name, prompt=prompt,
                                             max_tokens=max_tokens, temperature=temperature, **extra)
    choice = response.choices[0]
    usage = response.usage
    return ChatResult(text=choice.text, finish_reason=str(choice.finish_reason),
                      prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0,
                      latency_s=time.perf_counter() - began, model=response.model, raw=response.model_dump())


def served_models(settings: Settings, name: str) -> list[str]:
    """The model names the deployment's server answers to (``/v1/models``)."""
    deployment = get_llm_deployment(settings, name)
    with llm_errors(deployment):
        return [m.id for m in llm_client(settings, name).models.list().data]


__all__ = ["ChatResult", "chat", "complete", "llm_client", "llm_errors", "served_models"]
