"""The code archive is byte-identical for identical files, whoever builds it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from finetuning.backends.sagemaker import source_archive
from finetuning.orchestration.aws_jobs.source_archives import is_python_cache, reproducible_tar_gz
from finetuning.platform_client import source_tarball


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


def test_library_and_platform_client_archive_the_same_scripts_alike(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    scripts = root / "training_scripts"
    (scripts / "__pycache__").mkdir(parents=True)
    (scripts / "train.py").write_text("print('train')\n")
    (scripts / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    (root / "finetuning" / "data").mkdir(parents=True)
    library = source_archive(include_requirements=False, root=root)
    with tarfile.open(fileobj=io.BytesIO(library)) as tar:
        assert tar.extractfile("training_scripts/train.py").read() == b"print('train')\n"
    # The platform client archives the scripts folder itself, with the same writer.
    assert source_tarball(scripts) == reproducible_tar_gz({"train.py": b"print('train')\n"})
