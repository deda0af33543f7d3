"""What "a checkpoint folder t3vis can load" means: one definition for the app, ingestion and ``t3vis upgrade``.

A folder is loadable when it holds either

- a **full model**: ``config.json`` and its weights (a Trainer checkpoint, ``save_pretrained`` of a
  classifier, tagger or summarizer), or
- a **peft adapter** (LoRA and the like): ``adapter_config.json`` and the adapter's weights, which is what
  ``save_pretrained`` of a ``PeftModel`` writes (the callback's ``checkpoint_dir`` of a LoRA run), **and its
  base model can be found**: the folder the adapter names (or the one given as ``base_model``) is on this
  machine, or the name is a hub repository that is in the local hub cache or can be downloaded (online).

:func:`weights_status` says which of these a folder is, the base an adapter needs, and, when it cannot be
loaded, why and what to do. It only reads small files: no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t3vis.errors import ModelError, option
from t3vis.model.adapters import ADAPTER_CONFIG, adapter_settings

MODEL_CONFIG = "config.json"

# WeightsStatus.kind
FULL_MODEL = "model"  # config.json: a complete model
ADAPTER = "adapter"  # adapter_config.json: an adapter over a base model
NOT_RECORDED = "not recorded"  # the store keeps no folder for the checkpoint
NOT_A_MODEL = "not a model"  # the recorded folder is gone, or holds neither file


@dataclass(frozen=True)
class WeightsStatus:
    """What a checkpoint's weights folder holds and whether t3vis can load it."""

    folder: Path | None  # the folder (absolute), None when nothing is recorded
    kind: str  # FULL_MODEL, ADAPTER, NOT_RECORDED or NOT_A_MODEL
    named_base: str | None = None  # an adapter's base model, as its adapter_config.json names it
    base: str | None = None  # the base it would be loaded on (the given base_model, else named_base)
    base_found: bool = False  # that base is a folder here, in the hub cache, or downloadable
    problem: str = ""  # why it cannot be loaded and what to do; empty when it can

    @property
    def loadable(self) -> bool:
        return not self.problem

    def require(self) -> Path:
        """The folder, or a ModelError saying why it cannot be loaded."""
        if self.problem:
            raise ModelError(self.problem)
        return self.folder


def recorded_folder(store_folder: str | Path, recorded: str | None) -> Path | None:
    """The absolute folder of a path the store recorded (relative paths are relative to the store's folder)."""
    if not recorded:
        return None
    folder = Path(recorded).expanduser()
    return folder if folder.is_absolute() else Path(store_folder).resolve() / folder


def weights_status(folder: str | Path | None, *, base_model: str | Path | None = None) -> WeightsStatus:
    """Whether ``folder`` is a checkpoint t3vis can load (module docstring); ``base_model`` replaces the base an
    adapter names, as ``base_model=`` / ``--base-model`` of loading and ingestion do."""
    if folder is None:
        return WeightsStatus(None, NOT_RECORDED, problem="No folder of weights is recorded for this checkpoint.")
    folder = Path(folder).expanduser()
    if not (folder / ADAPTER_CONFIG).is_file():  # an adapter first, as loading reads it (peft may save both)
        if (folder / MODEL_CONFIG).is_file():
            return WeightsStatus(folder, FULL_MODEL)
        what = "holds neither config.json (a model) nor adapter_config.json (a peft adapter)" if folder.is_dir() \
            else "is not there (moved or deleted)"
        return WeightsStatus(folder, NOT_A_MODEL, problem=f"The checkpoint folder {folder} {what}.")
    try:
        named = adapter_settings(folder).get("base_model_name_or_path")
    except ModelError as exc:
        return WeightsStatus(folder, ADAPTER, problem=str(exc))
    named = str(named) if named else None
    base = str(base_model) if base_model not in (None, "") else named
    if base is None:
        return WeightsStatus(folder, ADAPTER, problem=f"{folder / ADAPTER_CONFIG} names no base model; give it "
                                                      f"with {option('base_model')}.")
    found = find_base(base)
    problem = "" if found is not None else (
        f"The adapter in {folder} is trained on {base}, which cannot be found here ({_why_not_found(base)}). "
        f"Give the base model's folder (or hub name) with {option('base_model')}.")
    return WeightsStatus(folder, ADAPTER, named_base=named, base=base, base_found=found is not None, problem=problem)


def find_base(base: str) -> str | None:
    """The base model as it can be loaded (a local folder, expanded), or None when it cannot be found: a path
    that is not there, or a hub name that is neither in the local hub cache nor downloadable (offline)."""
    local = Path(base).expanduser()
    if local.exists():
        return str(local)
    if not _may_be_hub_name(base):
        return None
    return base if _in_hub_cache(base) or not _hub_offline() else None


def _may_be_hub_name(name: str) -> bool:
    """``gpt2`` or ``owner/name``; not a path (absolute, relative with ./ or ~, or several folders deep)."""
    return not name.startswith(("/", ".", "~")) and "\\" not in name and name.count("/") <= 1 and name.strip() == name


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, MODEL_CONFIG), str)
    except (ImportError, ValueError):  # not a repository name
        return False


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return True


def _why_not_found(base: str) -> str:
    if not _may_be_hub_name(base):
        return "no such folder on this machine: moved, or recorded on another machine"
    return "not a folder here, not in the local hub cache, and the hub is offline"
