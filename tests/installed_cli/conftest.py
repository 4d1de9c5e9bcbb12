"""The CLI as a user runs it: the wheel installed into a fresh virtualenv, run from a folder
outside the repository with relative paths.

The wheel is built once per test session (all xdist workers share it through a file lock),
from a copy of the packaged sources so the checkout gets no build/ folder. The fresh
virtualenv holds only the project, from the wheel; the heavy dependencies (torch,
transformers, boto3, ...) come from this project's virtualenv through a ``.pth`` file written
after the wheel is installed, so nothing is downloaded or reinstalled. A ``.pth`` line only
adds a folder to ``sys.path``: the ``.pth`` files inside that folder (the editable install of
the checkout) are not run, so the checkout cannot leak in; ``test_install.py`` checks that.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

REPOSITORY = Path(__file__).resolve().parents[2]
# What the wheel is built from (pyproject's packages and the files it reads).
PACKAGED = ("pyproject.toml", "README.md", "requirements.txt", "requirements-ml.txt",
            "requirements-torch.txt", "finetuning", "stacks", "training_scripts")  # fmt: skip
RECORDS = [{"prompt": f"What is {i} plus 1?", "completion": f" {i + 1}"} for i in range(16)]


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session sees."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _build_wheel(target: Path) -> Path:
    source = target / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGED:
        path = REPOSITORY / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(target / "dist"), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (target / "dist").glob("*.whl")
    return wheel


def _make_venv(target: Path, wheel: Path) -> Path:
    venv = target / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This session's pip installs into the fresh interpreter; --no-deps: the wheel only.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # Written after the install, so pip never saw the project's own (editable) copy.
    project_site = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    lines = dict.fromkeys(p for p in project_site if Path(p).is_dir())
    (Path(purelib) / "zz_project_dependencies.pth").write_text("\n".join(lines) + "\n")
    return venv


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the project installed from its wheel (built once)."""
    shared = _shared_dir(tmp_path_factory) / "finetune-user-venv"
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared / "lock")):
        done = shared / "ready.json"
        if not done.is_file():
            wheel = _build_wheel(shared)
            venv = _make_venv(shared, wheel)
            done.write_text(json.dumps({"venv": str(venv), "wheel": str(wheel)}))
    return Path(json.loads(done.read_text())["venv"])


@pytest.fixture(scope="session")
def user_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Llama whose tokenizer knows the walkthrough's records."""
    from finetuning.testing import make_tiny_llama

    texts = [f"{r['prompt']}{r['completion']}" for r in RECORDS]
    return make_tiny_llama(tmp_path_factory.mktemp("user-model") / "tiny-llama", texts=texts)


@dataclass
class User:
    """A shell in a folder of the user's own, with only the fresh virtualenv on PATH."""

    folder: Path
    env: dict[str, str]
    venv: Path

    def run(
        self, *argv: str, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), cwd=self.folder, env=self.env, capture_output=True, text=True,
            timeout=timeout, input=input, check=False,
        )  # fmt: skip

    def finetune(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run("finetune", *argv, timeout=timeout)

    def bash(self, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-euo", "pipefail", "-c", script, timeout=timeout)


def user_environment(home: Path, venv: Path) -> dict[str, str]:
    """No AWS configuration, no repository on sys.path, the user's HOME, offline hub."""
    env = {
        "HOME": str(home),
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "VIRTUAL_ENV": str(venv),
    }
    return env


@pytest.fixture
def user(user_venv: Path, tmp_path: Path) -> User:
    home = tmp_path / "home"
    folder = home / "work"
    folder.mkdir(parents=True)
    return User(folder=folder, env=user_environment(home, user_venv), venv=user_venv)


@pytest.fixture
def write_records() -> Callable[[Path, list], Path]:
    def write(path: Path, records: list) -> Path:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write
