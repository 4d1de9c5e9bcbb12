"""The CDK app's settings base and how their errors read.

Every settings model (platform, monitoring, pipeline, orchestration) derives from
:class:`StrictModel`, the library's one strict base (``finetuning/settings.py``; the stacks
import the library, never the other way round); every settings file is validated through
:func:`validate_mapping`, so an error always names the file, the field, what was expected and
the value found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from finetuning.settings import StrictModel

__all__ = ["SettingsError", "StrictModel", "describe_error", "read_yaml", "validate_mapping"]

Model = TypeVar("Model", bound=BaseModel)


class SettingsError(ValueError):
    """Settings that failed validation; the message lists every problem."""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: ``X``, ``X | None``, ``tuple[X, ...]``, ``A | B``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _tagged(candidates: list[type[BaseModel]], tag: str) -> type[BaseModel] | None:
    """The member of a discriminated union whose literal tag is ``tag`` (pydantic puts the
    tag in an error's location)."""
    for model in candidates:
        for field in model.model_fields.values():
            if get_origin(field.annotation) is Literal and tag in get_args(field.annotation):
                return model
    return None


def _model_at(root: type[BaseModel], location: tuple[Any, ...]) -> type[BaseModel] | None:
    candidates: list[type[BaseModel]] = [root]
    for part in map(str, location):
        fields = candidates[0].model_fields if len(candidates) == 1 else {}
        if part in fields:
            candidates = _models_in(fields[part].annotation) or candidates
        elif len(candidates) > 1 and (member := _tagged(candidates, part)) is not None:
            candidates = [member]
        # otherwise a tuple index: the model stays the same
    return candidates[0] if len(candidates) == 1 else None


def describe_error(error: dict[str, Any], source: Path, root: type[BaseModel]) -> str:
    """One pydantic error as ``<file>: <field>: <what was expected> (got <value>)``."""
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        model = _model_at(root, error["loc"][:-1])
        allowed = ", ".join(model.model_fields) if model else "(see the settings docs)"
        message = f"unknown field: expected one of {allowed}"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"{source}: {field}: {message}{shown}"


def validate_mapping(model: type[Model], data: Any, source: Path, what: str = "settings") -> Model:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {describe_error(err, source, model)}" for err in exc.errors())
        raise SettingsError(f"invalid {what} in {source}:\n{problems}") from None


def read_yaml(path: Path) -> Any:
    """A settings file's parsed content; a syntax error names the file."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
