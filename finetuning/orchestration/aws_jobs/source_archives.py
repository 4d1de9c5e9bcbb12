"""``sourcedir.tar.gz``, the code archive a SageMaker training job unpacks and runs.

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
