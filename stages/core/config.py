"""The base of every stage's config class: the single source of truth for a stage's options.

A stage subclasses `StageConfig` and documents each field with a docstring under it. The same
class gives the CLI flags (`max_new_tokens` -> `--max-new-tokens`, help = the docstring), is the
schema of the stage's section in a recipe YAML, and is written into the output manifest.
Unknown keys and bad values fail validation before any work starts, naming the key.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserError


def _slurm_count() -> int:
    return int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))


def _slurm_index() -> int:
    # Slurm arrays may start at any index (`--array=1-4`); shards are numbered from 0.
    task = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    return task - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))


def _existing_folder(folder: Path | None) -> Path | None:
    if folder is not None and not folder.is_dir():
        raise ValueError(f"{folder}: no such directory")
    return folder


OptionalFolder = Annotated[Path | None, AfterValidator(_existing_folder)]
"""A path option that, when given, must name an existing directory (`--assets`)."""


class StageConfig(BaseModel):
    """Options every stage shares: where to read and write, sharding, resume."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)

    input: Path | None = None
    """Input dataset: a directory of Parquet or JSONL parts (any stage's output, or your own)."""
    output: Path = Path("out")
    """Output dataset directory. Parts are committed atomically; complete parts are skipped on re-runs."""
    format: Literal["parquet", "jsonl"] = "parquet"
    """File format of the output parts."""
    num_shards: int = Field(default_factory=_slurm_count, ge=1)
    """Split the work into N shards (default: $SLURM_ARRAY_TASK_COUNT, else 1)."""
    shard_index: int = Field(default_factory=_slurm_index, ge=0)
    """Which shard this process writes, 0-based (default: $SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN, else 0)."""
    overwrite: bool = False
    """Redo this shard's part even if it is complete (default: resume, skipping complete parts)."""
    chunk_size: int = Field(default=256, ge=1)
    """Rows per checkpoint chunk: a killed job loses at most one chunk of work."""
    max_rows: int | None = Field(default=None, ge=1)
    """Process only the first N input rows (for quick looks)."""

    @model_validator(mode="after")
    def _shard_in_range(self) -> StageConfig:
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index ({self.shard_index}) must be below num_shards ({self.num_shards})")
        return self

    # Fields that say where/how this process runs, not what the stage computes: two runs that
    # differ only in these produce the same rows, so resuming across them is allowed.
    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("input", "output", "format", "num_shards", "shard_index", "overwrite",
                                   "chunk_size", "max_rows")
    # Fields never written to a manifest (credentials).
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()

    def required_input(self, stage: str) -> Path:
        """`--input`, for a stage that reads a dataset: the stage runner's check before any row is read, and
        the type of it for the stage's own row checks (which run only after that check)."""
        if self.input is None:
            raise UserError(f"{stage}: --input is required (a dataset directory)")
        return self.input

    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the output rows (compared on resume)."""
        data = self.model_dump(mode="json", exclude=set(self.SECRET_FIELDS))
        return {k: v for k, v in data.items() if k not in self.RUN_FIELDS}

    def manifest_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(self.SECRET_FIELDS))


def validation_message(err: ValidationError, cls: type[BaseModel], source: str, prefix: str = "") -> str:
    """One line per bad key, `source: prefix.key: message`. An unknown key gets the nearest known
    keys (as a misspelt flag does); a check of the whole config (no key) gets just its message."""
    lines = []
    for e in err.errors():
        key = ".".join([*([prefix] if prefix else []), *(str(p) for p in e["loc"])])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key" + (_did_you_mean(str(e["loc"][0]), cls) if len(e["loc"]) == 1 else "")
        lines.append(f"{source}: {key}: {msg}" if key else f"{source}: {msg}")
    return "\n".join(lines)


def _did_you_mean(key: str, cls: type[BaseModel]) -> str:
    close = difflib.get_close_matches(key, [f.alias or name for name, f in cls.model_fields.items()], n=3)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def build_config(cls: type[ConfigT], values: dict[str, Any], source: str = "config") -> ConfigT:
    """Validate `values` into `cls`, turning validation errors into a UserError naming each key."""
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        raise UserError(validation_message(err, cls, source)) from None


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; errors name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys to values at the top level")
    return data
