"""Loading a checkpoint a store recorded: the run's task and labels, the folder the store keeps for it."""

from __future__ import annotations

from pathlib import Path

from t3vis.errors import ModelError
from t3vis.model.access import ModelBundle
from t3vis.queries.checkpoint_reads import checkpoint_weights_status
from t3vis.record.task import recording_task
from t3vis.store.database import Store


def load_recorded_checkpoint(store: Store, run_id: str, checkpoint: str, *, base_model: str | Path | None = None,
                             device: str | None = None) -> ModelBundle:
    """The model of a recorded checkpoint, in eval mode with t3vis attention, as the app's live views load it.

    The store records where the callback (``checkpoint_dir=``) or ``t3vis ingest`` saved the weights: a full
    model, or a peft adapter (LoRA), loaded over ``base_model`` when given, else over the base it names.
    Raises ModelError saying what is missing (for an adapter, the base it names) and how to fix it.
    """
    run = store.run(run_id)
    if run is None:
        raise ModelError(f"The store {store.path} has no run {run_id!r}.")
    if store.scalar("SELECT count(*) FROM checkpoints WHERE run_id = ? AND checkpoint = ?", [run_id, checkpoint]) == 0:
        raise ModelError(f"The run {run_id!r} has no checkpoint {checkpoint!r} in {store.path}.")
    status = checkpoint_weights_status(store, run_id, checkpoint, base_model=base_model)
    folder = status.require()
    return recording_task(run.task).load_checkpoint(str(folder), label_names=tuple(run.label_names), device=device,
                                                    base_model=None if base_model is None else str(base_model))
