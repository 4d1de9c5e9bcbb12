"""Lets the Hugging Face inference toolkit import under transformers 5.

``sagemaker-huggingface-inference-toolkit`` 2.6.0 (the newest) runs
``from transformers.file_utils import is_tf_available``; transformers 5 removed TensorFlow
support and that name. The platform inference image loads this module from a ``.pth`` file
at interpreter start (containers/inference/Dockerfile); the inference contract test
(tests/contracts/test_inference_container.py) runs the same file before it imports the toolkit.
"""

from __future__ import annotations


def install() -> None:
    """Give ``transformers.file_utils`` an ``is_tf_available`` that says False (no TF)."""
    try:
        import transformers.file_utils as file_utils
    except ImportError:  # transformers not installed (yet): nothing to patch
        return
    if not hasattr(file_utils, "is_tf_available"):
        file_utils.is_tf_available = lambda: False


install()
