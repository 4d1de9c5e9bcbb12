"""The shared builders load in a Lambda function that has only Powertools and pydantic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "torch", "transformers", "sagemaker", "pyarrow", "datasets")


def test_the_shared_builders_import_nothing_heavy() -> None:
    code = (
        "import sys, json\n"
        "import finetuning.aws_jobs.bedrock_customization, finetuning.aws_jobs.sagemaker_training\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "finetuning" in loaded
    assert not loaded & set(HEAVY)
