"""The inference container contract: the model folder that train.py leaves in
/opt/ml/model (which becomes model.tar.gz, the registered package's ModelDataUrl) is served by
the real Hugging Face inference toolkit (PyPI ``sagemaker-huggingface-inference-toolkit``, the
handler service the Hugging Face inference DLC runs under its model server), and answers each
body that ``finetune evaluate --endpoint-payload`` sends, sent and parsed by the evaluation's
own endpoint target.

What the container does, and what stands in for it here:
- the model server unpacks model.tar.gz into the model directory and starts
  ``HuggingFaceHandlerService``; ``initialize(context)`` puts ``<model_dir>/code`` on
  ``sys.path`` and imports the user module ``inference`` (SAGEMAKER_PROGRAM's default)
  https://huggingface.co/docs/sagemaker/inference#user-defined-code-and-modules
- each InvokeEndpoint becomes ``handle([{"body": bytes}], context)`` with the request's
  Content-Type and Accept headers: here the multi-model-server's own ``Context``,
  ``RequestProcessor`` and ``MetricsStore`` carry them, and a stand-in runtime client routes
  ``invoke_endpoint`` to ``handle``.

One compatibility shim: toolkit 2.6.0 imports ``transformers.file_utils.is_tf_available``,
which transformers 5 removed; the bare serving DLC pairs the toolkit with transformers 4.51.3.
The platform inference image (containers/inference/Dockerfile) installs the tested versions
and runs ``containers/inference/transformers5_compat.py`` at interpreter start; the test runs
that same file before importing the toolkit (test_inference_container_image.py checks that
the image installs it and that its .pth line lets the toolkit import).
"""

from __future__ import annotations

import io
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from finetuning.evaluation.samples import read_test_set
from finetuning.evaluation.targets import (
    ENDPOINT_PAYLOADS,
    InferenceParameters,
    SageMakerEndpointTarget,
    TargetError,
)

USER_MODULE = "inference"
TRANSFORMERS5_SHIM = (
    Path(__file__).resolve().parents[2] / "containers" / "inference" / "transformers5_compat.py"
)
# The bodies the platform's inference.py is meant to answer; "openai" is the schema of the
# vLLM (LMI) serving container (finetuning/approved_model_deployment.py, container: vllm), not
# of inference.py.
HUGGINGFACE_PAYLOADS = ("chat", "inputs")
RECORDS = [
    {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is 2 plus 2?"},
            {"role": "assistant", "content": "4"},
        ]
    },
    {"prompt": "Say hello.", "completion": "hello"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What train.py writes to SM_MODEL_DIR for a full fine-tune (one step, tiny model)."""
    from finetuning.testing import make_tiny_llama
    from training_scripts.train import main

    root = tmp_path_factory.mktemp("inference-contract")
    base = make_tiny_llama(root / "base")
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(RECORDS[0]) + "\n" for _ in range(8)))
    output = root / "model"
    argv = ["--model_name_or_path", str(base), "--train_file", str(train)]
    argv += ["--output_dir", str(output), "--method", "full", "--max_steps", "1"]
    assert main([*argv, "--max_seq_length", "64", "--logging_steps", "1"]) == 0
    return output


class ModelServer:
    """The toolkit's handler service with the model server's own request objects."""

    def __init__(self, model_dir: Path) -> None:
        # The platform inference image's shim, run as the image runs it (module docstring).
        runpy.run_path(str(TRANSFORMERS5_SHIM))
        from mms.context import Context
        from sagemaker_huggingface_inference_toolkit.handler_service import (
            HuggingFaceHandlerService,
        )

        self.context = Context("model", str(model_dir), None, 1, None, "1.1.11")
        self.service = HuggingFaceHandlerService()
        self.service.initialize(self.context)

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        from mms.context import RequestProcessor
        from mms.metrics.metrics_store import MetricsStore

        headers = {"Content-Type": request["ContentType"], "Accept": request["Accept"]}
        self.context.request_processor = [RequestProcessor(headers)]
        self.context.request_ids = {0: "request-0"}
        self.context.metrics = MetricsStore({0: "request-0"}, "model")
        (body,) = self.service.handle([{"body": request["Body"]}], self.context)
        assert self.context.get_response_content_type(0) == request["Accept"]
        return {"Body": io.BytesIO(body if isinstance(body, bytes) else body.encode())}


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Any:
    code = str(model_dir / "code")
    try:
        yield ModelServer(model_dir)
    finally:
        if code in sys.path:
            sys.path.remove(code)
        sys.modules.pop(USER_MODULE, None)


def test_train_py_packages_the_handler_where_the_container_looks(model_dir: Path) -> None:
    handler = model_dir / "code" / f"{USER_MODULE}.py"
    assert handler.is_file(), f"{handler}: the serving container imports code/inference.py"
    source = Path(__file__).resolve().parents[2] / "training_scripts" / "inference.py"
    assert handler.read_bytes() == source.read_bytes()


def test_the_toolkit_loads_the_user_module(server: ModelServer) -> None:
    module = sys.modules[USER_MODULE]
    assert Path(module.__file__).parent.name == "code"
    assert server.service.load == module.model_fn
    assert server.service.preprocess == module.input_fn


@pytest.mark.parametrize("payload", HUGGINGFACE_PAYLOADS)
def test_each_payload_of_finetune_evaluate_is_answered(
    server: ModelServer, model_dir: Path, payload: str, tmp_path: Path
) -> None:
    test_set = tmp_path / "test.jsonl"
    test_set.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    target = SageMakerEndpointTarget("tiny-endpoint", server, payload=payload)
    for sample in read_test_set(test_set):
        for params in (
            InferenceParameters(max_tokens=3),
            InferenceParameters(max_tokens=3, temperature=0.7, top_p=0.9, top_k=5),
        ):
            generation = target.generate(sample, params)
            assert isinstance(generation.text, str)
            assert generation.output_tokens is not None and 1 <= generation.output_tokens <= 3
            assert generation.input_tokens and generation.input_tokens > 3
            assert generation.stop_reason in ("stop", "length")


def test_every_payload_is_accounted_for() -> None:
    # A new --endpoint-payload must be added here, or to the vLLM container's contract.
    assert set(ENDPOINT_PAYLOADS) == {*HUGGINGFACE_PAYLOADS, "openai"}
    with pytest.raises(TargetError):
        SageMakerEndpointTarget("x", None, payload="tgi")
