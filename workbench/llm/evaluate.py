"""A small built-in prompt set with known answers, and how answers are scored (exact match, keywords).

The prompts are short factual questions a 135M-parameter instruct model can get right some of the time;
the score is a number to compare versions by, not a benchmark. ``generate`` is any callable taking a list
of chat messages and returning the answer's text: Hugging Face ``generate()`` in-process
(:func:`hf_generator`) before registering, or the OpenAI client of a vLLM deployment after deploying.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput

Generate = Callable[[list[dict[str, str]]], str]


@dataclass(frozen=True)
class EvalPrompt:
    """A question, the answer that counts as exactly right, and keywords any of which counts as right."""

    id: str
    question: str
    answer: str
    keywords: tuple[str, ...]


PROMPT_SET: tuple[EvalPrompt, ...] = (
    EvalPrompt("capital-france", "What is the capital of France? Answer with one word.", "Paris", ("paris",)),
    EvalPrompt("capital-japan", "What is the capital of Japan? Answer with one word.", "Tokyo", ("tokyo",)),
    EvalPrompt("capital-italy", "What is the capital of Italy? Answer with one word.", "Rome", ("rome",)),
    EvalPrompt("two-plus-two", "What is 2 + 2? Answer with a number.", "4", ("4", "four")),
    EvalPrompt("days-in-week", "How many days are in a week? Answer with a number.", "7", ("7", "seven")),
    EvalPrompt("sky-colour", "What colour is the sky on a clear day? Answer with one word.", "Blue", ("blue",)),
    EvalPrompt("water-freezes", "At how many degrees Celsius does water freeze? Answer with a number.", "0",
               ("0", "zero")),
    EvalPrompt("largest-planet", "What is the largest planet in the solar system? Answer with one word.",
               "Jupiter", ("jupiter",)),
    EvalPrompt("opposite-hot", "What is the opposite of hot? Answer with one word.", "Cold", ("cold",)),
    EvalPrompt("legs-spider", "How many legs does a spider have? Answer with a number.", "8", ("8", "eight")),
)
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."


def prompt_set_version(prompts: Sequence[EvalPrompt] = PROMPT_SET) -> str:
    """A content hash of the prompt set (logged with the results, so scores compare like with like)."""
    text = json.dumps([asdict(p) for p in prompts], sort_keys=True)
    return "prompts-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split("\n")[0].strip()


def exact_match(answer: str, expected: str) -> bool:
    """The answer, lower-cased and stripped of punctuation, is exactly the expected one."""
    return " ".join(_normalise(answer).split()) == " ".join(_normalise(expected).split())


def keyword_match(answer: str, keywords: Sequence[str]) -> bool:
    """Any keyword appears in the answer as a whole word (case-insensitive)."""
    words = set(re.findall(r"[a-z0-9]+", answer.lower()))
    return any(k.lower() in words for k in keywords)


@dataclass(frozen=True)
class EvalResult:
    """Scores over the prompt set, and every answer."""

    exact_match: float
    keyword_match: float
    n: int
    seconds: float
    prompt_set: str
    answers: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {"eval_exact_match": self.exact_match, "eval_keyword_match": self.keyword_match,
                "eval_prompts": float(self.n), "eval_seconds": self.seconds}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.answers)


def messages_for(prompt: EvalPrompt, system: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt.question}]


def evaluate(generate: Generate, prompts: Sequence[EvalPrompt] = PROMPT_SET, *, limit: int | None = None,
             system: str | None = SYSTEM_PROMPT) -> EvalResult:
    """Ask every prompt (the first ``limit``), score the answers; the generator sees chat messages."""
    chosen = list(prompts)[:limit] if limit else list(prompts)
    if not chosen:
        raise InvalidInput("the prompt set is empty (limit must be >= 1)")
    began = time.monotonic()
    answers = []
    for p in chosen:
        text = generate(messages_for(p, system))
        if not isinstance(text, str):
            raise InvalidInput(f"the generator must return a string, got {type(text).__name__}")
        answers.append({"id": p.id, "question": p.question, "expected": p.answer, "answer": text.strip(),
                        "exact_match": exact_match(text, p.answer), "keyword_match": keyword_match(text, p.keywords)})
    n = len(answers)
    return EvalResult(exact_match=sum(bool(a["exact_match"]) for a in answers) / n,
                      keyword_match=sum(bool(a["keyword_match"]) for a in answers) / n, n=n,
                      seconds=round(time.monotonic() - began, 2), prompt_set=prompt_set_version(chosen),
                      answers=answers)


def hf_generator(model_dir: str | Path, *, max_new_tokens: int = 16) -> Generate:
    """Greedy Hugging Face ``generate()`` on the folder's model, applying its chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()

    def generate(messages: list[dict[str, str]]) -> str:
        text = str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        ids: Any = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return str(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))

    return generate
