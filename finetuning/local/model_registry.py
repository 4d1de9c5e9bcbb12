"""The local model registry: fine-tuned model ids to directories, and base model lookup.

(Not the SageMaker Model Registry, :mod:`finetuning.model_package_registry`.)

A completed local job registers its output directory under the job's ``model_name`` (or its
job id). A later job may name that id as its ``base_model``; LoRA outputs are usable as a base
only when they were also saved merged (``merge_adapter``), since ``train.py`` loads a full model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from finetuning.errors import InvalidJobConfigError, ModelNotFoundError
from finetuning.local.store import JobStore

MERGED_DIR = "merged"
# Hugging Face Hub repository ids: "name" or "owner/name".
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class RegisteredModel:
    model_id: str
    path: Path
    base_model: str | None
    job_id: str | None
    method: str | None
    created_at: datetime

    @property
    def is_adapter(self) -> bool:
        return (self.path / "adapter_config.json").is_file()


class LocalModelRegistry:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def register(
        self,
        model_id: str,
        path: Path | str,
        *,
        base_model: str | None = None,
        job_id: str | None = None,
        method: str | None = None,
    ) -> RegisteredModel:
        if self.store.get_model(model_id) is not None:
            raise InvalidJobConfigError("model_name", "a model id not yet registered", model_id)
        resolved = Path(path).resolve()
        self.store.insert_model(model_id, str(resolved), base_model, job_id, method)
        return self.get(model_id)

    def get(self, model_id: str) -> RegisteredModel:
        row = self.store.get_model(model_id)
        if row is None:
            raise ModelNotFoundError(model_id, "no registered model with this id")
        return RegisteredModel(
            model_id=row["model_id"],
            path=Path(row["path"]),
            base_model=row["base_model"],
            job_id=row["job_id"],
            method=row["method"],
            created_at=datetime.fromtimestamp(row["created_at"], UTC),
        )

    def exists(self, model_id: str) -> bool:
        return self.store.get_model(model_id) is not None

    def list(self) -> list[RegisteredModel]:
        return [self.get(row["model_id"]) for row in self.store.list_models()]

    def resolve_base_model(self, reference: str) -> str:
        """What ``train.py --model_name_or_path`` gets for a job's ``base_model``.

        In order: a registered model id (its merged weights for an adapter), an existing local
        model directory, or a Hugging Face Hub id (which must be in the local cache when
        ``HF_HUB_OFFLINE`` is set, since nothing can be downloaded then).
        """
        if self.exists(reference):
            model = self.get(reference)
            if model.is_adapter:
                merged = model.path / MERGED_DIR
                if (merged / "config.json").is_file():
                    return str(merged)
                raise ModelNotFoundError(
                    reference,
                    "a registered LoRA adapter can be a base model only when it was saved "
                    "merged; train it with merge_adapter=true",
                )
            return str(model.path)
        path = Path(reference).expanduser()
        if path.exists():
            if (path / "config.json").is_file():
                return str(path.resolve())
            raise ModelNotFoundError(
                reference, f"{path} exists but has no config.json: not a model directory"
            )
        if not HUB_ID.match(reference) or reference.startswith((".", "/", "~")):
            raise ModelNotFoundError(
                reference, "not a registered model id, an existing directory or a Hub id"
            )
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(reference, "config.json")
            if not isinstance(cached, str):
                raise ModelNotFoundError(
                    reference,
                    "not a registered model id or directory, and not in the Hugging Face "
                    "cache (HF_HUB_OFFLINE is set, so it cannot be downloaded)",
                )
        return reference
