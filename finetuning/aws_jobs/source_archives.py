"""``sourcedir.tar.gz``, the code archive a SageMaker training job unpacks and runs.

One builder for every path that starts ``train.py`` on SageMaker: the library's SageMaker
backend and the platform client (``finetune job create --via-platform``). The SageMaker
training toolkit extracts the archive into ``/opt/ml/code``, puts that folder first on
``sys.path`` and runs ``python training_scripts/train.py --name value ...`` there, so the
archive keeps the package layout that ``train.py`` imports::

    training_scripts/...          the training package (train.py, its modules, requirements.txt)
    finetuning/__init__.py        a package marker, not the client library
    finetuning/data/...           the record formats and splits train.py reads data with
    requirements.txt              only when the job may reach a package index (see below)

The toolkit runs ``pip install -r requirements.txt`` when the archive's root holds one
(``sagemaker_training.entry_point.install``); under network isolation that install cannot
reach an index and fails the job, so isolated jobs get no root ``requirements.txt`` and run
on an image that already has the pinned packages (docs/training.md, "Images").

Byte-identical for identical files (fixed order, zeroed times and owners, fixed modes), so
that its SHA-256 names it in S3 and an unchanged archive is uploaded only once.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

SOURCE_ARCHIVE_NAME = "sourcedir.tar.gz"
# The script the toolkit runs (the ``sagemaker_program`` hyperparameter), relative to the
# archive's root.
TRAINING_ENTRY_POINT = "training_scripts/train.py"
REQUIREMENTS_FILE = "requirements.txt"
PACKAGE_MARKER = b'"""finetuning.data for the training container."""\n'


def is_python_cache(relative: Path) -> bool:
    """``__pycache__`` folders and ``.pyc`` files stay out of an archive."""
    return "__pycache__" in relative.parts or relative.suffix == ".pyc"


def reproducible_tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` (archive name -> content), in the mapping's order."""
    buffer = io.BytesIO()
    # gzip stores a timestamp; a fixed one keeps the bytes (and the S3 key) stable.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _installed_package_dir(name: str) -> Path:
    """The folder of an importable package (``training_scripts``, ``finetuning.data``),
    found without importing anything heavier than its ``__init__``."""
    import importlib

    return Path(importlib.import_module(name).__file__).resolve().parent


def _tree(base: Path, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}/{path.relative_to(base).as_posix()}": path.read_bytes()
        for path in sorted(base.rglob("*"))
        if path.is_file() and not is_python_cache(path.relative_to(base))
    }


def training_source_archive(
    *,
    install_requirements: bool,
    scripts_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> bytes:
    """``sourcedir.tar.gz`` for ``train.py``: ``training_scripts/`` and ``finetuning/data/``
    as packages at the root, plus ``training_scripts/requirements.txt`` as the root
    ``requirements.txt`` when ``install_requirements`` (jobs without network isolation).

    ``scripts_dir``/``data_dir`` default to the installed ``training_scripts`` and
    ``finetuning.data`` packages.
    """
    scripts = Path(scripts_dir) if scripts_dir else _installed_package_dir("training_scripts")
    data = Path(data_dir) if data_dir else _installed_package_dir("finetuning.data")
    entry = scripts / Path(TRAINING_ENTRY_POINT).name
    if not entry.is_file():
        raise FileNotFoundError(f"{entry}: not found (the script SageMaker training jobs run)")
    files = {
        **_tree(scripts, "training_scripts"),
        **_tree(data, "finetuning/data"),
        "finetuning/__init__.py": PACKAGE_MARKER,
    }
    requirements = scripts / REQUIREMENTS_FILE
    if install_requirements and requirements.is_file():
        files[REQUIREMENTS_FILE] = requirements.read_bytes()
    return reproducible_tar_gz({name: files[name] for name in sorted(files)})
