"""Staging of image build contexts (stacks/container_images.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks import container_images


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(container_images, "STAGING_ROOT", tmp_path / "staged")
    root = tmp_path / "repo"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "module.py").write_text("VALUE = 1\n")
    (root / "pkg" / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"\0")
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text("FROM scratch\n")
    (root / "unrelated.txt").write_text("not in the image\n")
    return root


def test_stages_only_the_listed_paths_without_caches(repo: Path) -> None:
    staged = container_images.stage_context(("docker", "pkg"), root=repo)
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files == ["docker/Dockerfile", "pkg/module.py"]


def test_same_content_same_folder_changed_content_new_folder(repo: Path) -> None:
    first = container_images.stage_context(("docker", "pkg"), root=repo)
    assert container_images.stage_context(("docker", "pkg"), root=repo) == first
    (repo / "pkg" / "module.py").write_text("VALUE = 2\n")
    second = container_images.stage_context(("docker", "pkg"), root=repo)
    assert second != first
    assert (second / "pkg" / "module.py").read_text() == "VALUE = 2\n"
    assert (first / "pkg" / "module.py").read_text() == "VALUE = 1\n"


def test_missing_path_is_named(repo: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        container_images.stage_context(("missing",), root=repo)


def test_evaluation_context_holds_what_the_dockerfile_copies() -> None:
    dockerfile = container_images.REPO_ROOT / container_images.EVALUATION_DOCKERFILE
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            # COPY [--flags] SOURCE... DESTINATION
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert any(
            source.rstrip("/") == path or source.startswith(f"{path}/")
            for path in container_images.EVALUATION_CONTEXT
        ), f"{source} is not staged into the build context"
