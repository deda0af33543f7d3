"""Finding a Trainer's checkpoints on disk and what its trainer_state.json says about them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from t3vis.errors import ModelError

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class CheckpointFolder:
    """A saved checkpoint: its folder, name, step, epoch and the trainer's logged metrics at that step."""

    path: Path
    name: str
    step: int | None
    epoch: float | None
    trainer_metrics: dict = field(default_factory=dict)


def describe_checkpoint(path: str | Path, *, name: str | None = None) -> CheckpointFolder:
    """Read step, epoch and logged metrics of one checkpoint folder (from trainer_state.json when present)."""
    folder = Path(path)
    match = _CHECKPOINT_NAME.match(folder.name)
    step = int(match.group(1)) if match else None
    epoch = None
    metrics: dict = {}
    state_file = folder / "trainer_state.json"
    if state_file.is_file():
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a truncated or binary file
            raise ModelError(f"{state_file} is not readable JSON ({exc}); delete or repair it.") from exc
        if not isinstance(state, dict) or not isinstance(state.get("log_history", []), list):
            raise ModelError(f"{state_file} is not a Trainer state (a JSON object with a log_history list); "
                             "delete or repair it.")
        step = state.get("global_step", step)
        epoch = state.get("epoch")
        for entry in state.get("log_history", []):
            if isinstance(entry, dict) and entry.get("step") == step:
                metrics.update({key: value for key, value in entry.items() if isinstance(value, (int, float))})
    return CheckpointFolder(path=folder, name=name or folder.name, step=step, epoch=epoch, trainer_metrics=metrics)


def find_checkpoints(output_dir: str | Path) -> list[CheckpointFolder]:
    """Every ``checkpoint-<step>`` folder of a Trainer output directory, in step order."""
    root = Path(output_dir)
    if not root.is_dir():
        raise ModelError(f"{root} is not a folder. Give the Trainer's output_dir, which holds checkpoint-* folders.")
    folders = [child for child in root.iterdir() if child.is_dir() and _CHECKPOINT_NAME.match(child.name)]
    if not folders:
        raise ModelError(
            f"{root} holds no checkpoint-<step> folders. Point at the Trainer's output_dir, or ingest one "
            "saved model with `t3vis ingest --model FOLDER`."
        )
    return sorted((describe_checkpoint(folder) for folder in folders), key=lambda c: (c.step or 0, c.name))
