"""Each serving function imports from its own bundle alone: the handler folder and the
parts of ``finetuning/`` the stack ships with it (not the whole library, not this checkout).

Third-party packages come from this virtualenv here (the deployed bundle gets them from the
folder's pinned requirements.txt), so the check is about the library paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.lambda_bundling import LAMBDA_ROOT, LocalPythonBundling
from stacks.serving_stack import SERVING_LIBRARIES

ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "PLATFORM_RESOURCE_PREFIX": "llm-finetuning-dev",
    "SAGEMAKER_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker",
    "PLATFORM_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/1234",
    "ARTIFACTS_BUCKET": "artifacts",
    "EVALUATION_BUCKET": "evaluation",
    "MODEL_PACKAGE_GROUP": "llm-finetuning-dev-models",
    "ENDPOINT_SUBNET_IDS": "subnet-1",
    "ENDPOINT_SECURITY_GROUP_IDS": "sg-1",
    "SERVING_SETTINGS": "{}",
}

IMPORT = """
import sys
bundle = sys.argv[1]
sys.path.insert(0, bundle)
import index, finetuning
assert finetuning.__file__.startswith(bundle), finetuning.__file__
assert callable(index.handler)
# The editable install's finder would find a module the bundle lacks in this checkout.
outside = sorted(
    name
    for name, module in sys.modules.items()
    if name.startswith("finetuning.")
    and not (getattr(module, "__file__", None) or bundle).startswith(bundle)
)
assert not outside, f"imported from outside the bundle: {outside}"
print(sorted(m for m in sys.modules if m.startswith("finetuning.")))
"""


@pytest.mark.parametrize("folder", sorted(SERVING_LIBRARIES))
def test_handler_imports_from_its_bundle_alone(folder: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    # Without requirements.txt: its ARM64 wheels are not this machine's.
    shutil.copytree(LAMBDA_ROOT / folder, source, ignore=shutil.ignore_patterns("requirements.txt"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    LocalPythonBundling(source, library_paths=SERVING_LIBRARIES[folder]).try_bundle(str(bundle))
    assert not (bundle / "finetuning" / "cli").exists()  # not the whole library
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT, str(bundle)],
        env={**ENVIRONMENT, "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
