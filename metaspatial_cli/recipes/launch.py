"""How a recipe starts `update` on several GPUs: `accelerate launch` with the recipe's `accelerate:` section.

    accelerate:
      config_file: examples/accelerate/fsdp.yaml   # DDP, FSDP2 or DeepSpeed ZeRO (examples/accelerate/)
      num_processes: 4                             # update processes = GPUs; part of the step arithmetic
      main_process_port: 29501                     # any other `accelerate launch` option, passed as --KEY VALUE

Without the section `update` runs as one plain process (CPU, or one GPU: with several GPUs visible to
one process the Trainer would wrap the model in nn.DataParallel, which TRL refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.core.errors import UserError

PROGRAM = ("-m", "metaspatial_cli")
"""What accelerate launch starts in each process: this package's command line."""


def check_accelerate(section: Any, source: str) -> dict[str, Any] | None:
    """The validated `accelerate:` section (config_file made absolute), or None when absent."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise UserError(f"{source}: accelerate: expected a mapping of `accelerate launch` options")
    out = dict(section)
    config = out.get("config_file")
    if not isinstance(config, str) or not Path(config).is_file():
        raise UserError(f"{source}: accelerate.config_file: expected an accelerate config file "
                        f"(e.g. examples/accelerate/fsdp.yaml), got {config!r}")
    out["config_file"] = str(Path(config).absolute())
    processes = out.setdefault("num_processes", 1)
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise UserError(f"{source}: accelerate.num_processes: expected a whole number of at least 1 "
                        f"(the update's GPUs), got {processes!r}")
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UserError(f"{source}: accelerate.{key}: expected a value for `accelerate launch --{key}` "
                            f"(YAML reads an unquoted no/yes as a boolean: write 'no'), got {value!r}")
    return out


def update_launcher(section: dict[str, Any] | None) -> tuple[str, ...]:
    """The program that runs `update`: accelerate launch with the section's options, or nothing (plain)."""
    if section is None:
        return ()
    options = [item for key, value in section.items() for item in (f"--{key}", str(value))]
    return ("accelerate", "launch", *options, *PROGRAM)
