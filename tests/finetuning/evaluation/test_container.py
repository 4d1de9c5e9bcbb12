"""The evaluation Processing job's image definition (containers/evaluation), checked without
Docker: its pins are the project's pins, what it copies exists and passes its ignore file, and
it installs every package the job's code imports. Building the image needs a Docker daemon,
which the test machines do not have."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
CONTAINER = ROOT / "containers" / "evaluation"
DOCKERFILE = CONTAINER / "Dockerfile"
IGNORE_FILE = CONTAINER / "Dockerfile.dockerignore"
PROJECT_PINS = ("requirements.txt", "requirements-ml.txt", "requirements-torch.txt")
# The platform the image runs on, for dependency markers.
TARGET = {
    "python_version": "3.11",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines (comments, blank lines and ``-r`` includes skipped)."""
    found = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.name}: line {number}: expected name==version, got {line!r}"
        )
        found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    pairs = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_container_pins_are_the_project_pins() -> None:
    container = pins(CONTAINER / "requirements.txt")
    project: dict[str, str] = {}
    for name in PROJECT_PINS:
        project |= pins(ROOT / name)
    assert "torch" in container  # the image brings its own (CUDA) torch
    unknown = sorted(set(container) - set(project))
    assert not unknown, f"pinned in the image only, not in {', '.join(PROJECT_PINS)}: {unknown}"
    drift = {
        name: f"image {version} != project {project[name]}"
        for name, version in container.items()
        if project[name] != version
    }
    assert not drift, f"containers/evaluation/requirements.txt drifted: {drift}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the ignore file leaves ``path`` out (last matching pattern wins; a pattern
    that matches a folder covers what is inside)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, body) for p in prefixes):
            ignored = not negate
    return ignored


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in IGNORE_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("**")
    ]
    copies = [args for keyword, args in instructions() if keyword in ("COPY", "ADD")]
    assert copies, "the Dockerfile copies nothing"
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        assert "--from" not in args  # a single-stage build: sources come from the context
        *sources, _destination = words
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source.rstrip("/"), patterns), (
                f"COPY {source}: left out of the build context by {IGNORE_FILE.name}"
            )


def test_entry_point_user_and_base_image() -> None:
    pairs = instructions()
    entrypoint = [json.loads(args) for keyword, args in pairs if keyword == "ENTRYPOINT"]
    assert entrypoint == [["python", "-m", "finetuning.evaluation.processing"]]
    assert (ROOT / "finetuning" / "evaluation" / "processing.py").is_file()
    users = [args for keyword, args in pairs if keyword == "USER"]
    # SageMaker creates /opt/ml/processing/* as root at job start; the job writes there as
    # root (tests/contracts/test_processing_container.py runs it on that layout).
    assert users == ["root"], "the job runs as root, said explicitly"
    bases = [args for keyword, args in pairs if keyword == "FROM"]
    assert len(bases) == 1
    # a public registry (no ECR login), pinned to a patch release of Python 3.11
    assert re.fullmatch(r"public\.ecr\.aws/docker/library/python:3\.11\.\d+-slim-\w+", bases[0])


def _closure(roots: list[str]) -> set[str]:
    """The distributions ``roots`` install on the target platform, as this virtualenv's
    metadata describes them."""
    seen: set[str] = set()
    stack = [canonicalize_name(r) for r in roots]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(TARGET):
                stack.append(canonicalize_name(requirement.name))
    return seen


# The modules the job loads: the entry point, what it imports when it runs, and (in functions,
# so found by reading the source) the model libraries.
_LOADED = """
import json, sys
import finetuning.evaluation.processing as p
import finetuning.evaluation.curves, finetuning.evaluation.document
import finetuning.evaluation.evaluator, finetuning.evaluation.report, finetuning.evaluation.runner
import finetuning.evaluation.samples, finetuning.evaluation.step, finetuning.evaluation.targets
print(json.dumps([m.__file__ for n, m in sys.modules.items() if n.startswith("finetuning")]))
"""


def test_image_installs_what_the_job_imports() -> None:
    files = json.loads(
        subprocess.run(
            [sys.executable, "-c", _LOADED], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    )
    imported: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(Path(file).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = sorted(
        name
        for name in imported
        if name not in sys.stdlib_module_names and name not in ("finetuning", "__future__")
    )
    assert {"torch", "transformers", "peft", "matplotlib"} <= set(third_party)  # found at all
    distributions = importlib.metadata.packages_distributions()
    installed = _closure(list(pins(CONTAINER / "requirements.txt")))
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not any(canonicalize_name(d) in installed for d in distributions.get(module, []))
    }
    assert not missing, f"imported by the job, not installed in the image: {missing}"
