"""The shared builders load in a Lambda function, whose bundle ships only
``finetuning/aws_jobs/``, ``finetuning/orchestration/`` and ``finetuning/platform.py`` with
Powertools and pydantic; they import nothing else of the library, not even orchestration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("boto3", "botocore", "torch", "transformers", "sagemaker", "pyarrow", "datasets")
SHARED = (
    "finetuning.aws_jobs.bedrock_customization",
    "finetuning.aws_jobs.sagemaker_training",
    "finetuning.aws_jobs.source_archives",
    "finetuning.aws_jobs.backends",
    "finetuning.aws_jobs.provisioned_throughput",
    "finetuning.aws_jobs.on_demand",
)


def test_the_shared_builders_need_nothing_a_function_bundle_lacks() -> None:
    code = f"import sys, json\nimport {', '.join(SHARED)}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY)
    ours = {name for name in loaded if name.startswith("finetuning")}
    assert set(SHARED) <= ours
    assert {name for name in ours if not name.startswith("finetuning.aws_jobs")} == {"finetuning"}
