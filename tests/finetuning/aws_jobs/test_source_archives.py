"""The code archive: byte-identical for identical files, one builder for every path."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from finetuning.aws_jobs.source_archives import (
    TRAINING_ENTRY_POINT,
    is_python_cache,
    reproducible_tar_gz,
    training_source_archive,
)
from finetuning.backends.sagemaker import source_archive
from finetuning.orchestration.manifest import JobManifest
from finetuning.platform_client import source_tarball


def names(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return tar.getnames()


def test_the_same_files_give_the_same_bytes_with_fixed_metadata() -> None:
    files = {"train.py": b"print('train')\n", "lib/util.py": b"X = 1\n"}
    archive = reproducible_tar_gz(files)
    assert archive == reproducible_tar_gz(dict(files))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["train.py", "lib/util.py"]
        assert {(m.mode, m.mtime, m.uid, m.gid) for m in members} == {(0o644, 0, 0, 0)}
        assert tar.extractfile("lib/util.py").read() == b"X = 1\n"


def test_python_caches_stay_out() -> None:
    assert is_python_cache(Path("__pycache__/train.cpython-311.pyc"))
    assert is_python_cache(Path("lib/old.pyc"))
    assert not is_python_cache(Path("lib/train.py"))


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    scripts = root / "training_scripts"
    (scripts / "__pycache__").mkdir(parents=True)
    (scripts / "train.py").write_text("print('train')\n")
    (scripts / "requirements.txt").write_text("transformers==5.23.0\n")
    (scripts / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    (root / "finetuning" / "data").mkdir(parents=True)
    (root / "finetuning" / "data" / "formats.py").write_text("FORMATS = ()\n")
    (root / "finetuning" / "service.py").write_text("client code\n")
    return root


def test_the_archive_keeps_the_package_layout_train_py_imports(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    archive = training_source_archive(
        install_requirements=True,
        scripts_dir=root / "training_scripts",
        data_dir=root / "finetuning" / "data",
    )
    assert names(archive) == [
        "finetuning/__init__.py",
        "finetuning/data/formats.py",
        "requirements.txt",
        "training_scripts/requirements.txt",
        "training_scripts/train.py",
    ]
    isolated = training_source_archive(
        install_requirements=False,
        scripts_dir=root / "training_scripts",
        data_dir=root / "finetuning" / "data",
    )
    assert "requirements.txt" not in names(isolated)


def test_library_and_platform_paths_build_the_same_archive(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    library = source_archive(include_requirements=False, root=root)
    platform = source_tarball(root / "training_scripts")
    # Same scripts folder, same bytes: the platform differs only in where finetuning/data
    # comes from (the installed package), which the library also uses by default.
    assert names(platform)[-2:] == names(library)[-2:]
    assert source_tarball() == source_archive(include_requirements=False)
    assert "requirements.txt" not in names(source_tarball())


def test_the_entry_point_is_inside_the_archive_for_both_paths() -> None:
    assert TRAINING_ENTRY_POINT == "training_scripts/train.py"
    assert TRAINING_ENTRY_POINT in names(source_tarball())
    manifest = JobManifest.model_validate(
        {
            "job_name": "j",
            "backend": "sagemaker",
            "base_model": "s3://bucket-a/m/",
            "training_data_uri": "s3://bucket-a/t.jsonl",
            "source_dir_uri": "s3://bucket-a/code/sourcedir.tar.gz",
        }
    )
    assert manifest.entry_point == TRAINING_ENTRY_POINT
