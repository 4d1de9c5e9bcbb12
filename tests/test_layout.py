"""The test tree mirrors the code (docs/architecture.md, "Tests"): a test folder for a code
folder or module that exists, and no tests outside the known top-level folders."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# Test folders named after a code package, and the code they mirror.
MIRRORS = {"finetuning": "finetuning", "stacks": "stacks", "training_scripts": "training_scripts"}
# Test folders that do not mirror one package: tests from the outside, handlers, shared helpers.
OTHER_FOLDERS = {"contracts", "installed_cli", "lambda_functions", "support", "fixtures"}


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


def test_top_level_test_folders_are_known() -> None:
    top = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == set(MIRRORS) | OTHER_FOLDERS


def test_each_mirrored_folder_names_code_that_exists() -> None:
    missing = []
    for tests_name, code_name in MIRRORS.items():
        for folder in [TESTS / tests_name, *_folders(TESTS / tests_name)]:
            relative = folder.relative_to(TESTS / tests_name)
            code = ROOT / code_name / relative
            if not (code.is_dir() or code.with_suffix(".py").is_file()):
                missing.append(str(folder.relative_to(ROOT)))
    assert missing == [], f"test folders without the code they mirror: {missing}"


def test_no_test_modules_at_the_top() -> None:
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == ["test_layout.py"]


def test_every_lambda_function_folder_has_handler_tests() -> None:
    """Each folder in lambda/ is named in a handler test (by its folder name)."""
    functions = sorted(p.name for p in (ROOT / "lambda").iterdir() if (p / "index.py").is_file())
    text = "\n".join(p.read_text() for p in (TESTS / "lambda_functions").glob("test_*.py"))
    text += "\n".join(p.read_text() for p in (TESTS / "support").glob("*.py"))
    untested = [name for name in functions if f'"{name}"' not in text and f"/{name}" not in text]
    assert untested == [], f"lambda/ functions no handler test names: {untested}"
