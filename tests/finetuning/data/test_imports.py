"""The package stays cheap to import: train.py loads formats inside the training container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import finetuning.data

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("boto3", "botocore", "pyarrow", "PIL", "datasets", "transformers", "torch", "tqdm")


def modules_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return set(json.loads(done.stdout))


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    loaded = modules_after("import finetuning.data; finetuning.data.validate_path")
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY)


def test_formats_and_split_need_only_the_standard_library() -> None:
    loaded = modules_after("import finetuning.data.formats, finetuning.data.split")
    ours = {name for name in loaded if name.startswith("finetuning")}
    assert ours <= {
        "finetuning",
        "finetuning.data",
        "finetuning.data.files",  # standard library only: whole files with the umask's mode
        "finetuning.data.formats",
        "finetuning.data.split",
    }
    stdlib = set(sys.stdlib_module_names)
    third_party = {name.split(".")[0] for name in loaded} - stdlib - {"finetuning"}
    assert not {name for name in third_party if not name.startswith("_")}, third_party


def test_lazy_names_resolve() -> None:
    for name in finetuning.data.__all__:
        assert getattr(finetuning.data, name) is not None
