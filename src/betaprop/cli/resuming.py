"""``train --resume``: the checks that the saved run and the data and folder go together,
and the arguments of ``fit`` that continue it (``cli.train``)."""

from __future__ import annotations

import os
from typing import Any

from ..engine.network import Network
from .options import UserError
from .runs import MODEL_FILE

__all__ = ["refuse_finished_model", "resume_settings"]


def refuse_finished_model(folder: str, saved: Any) -> None:
    """Refuse to resume into a folder whose model file is a finished run's (or another
    run's): resuming would replace it."""
    from ..files.model import ModelFileError, read_model

    path = os.path.join(folder, MODEL_FILE)
    if not os.path.lexists(path):
        return
    try:
        record = read_model(path).metadata.get("training", {})
    except ModelFileError:
        return  # a damaged model file: the resumed run writes a good one
    record = record if isinstance(record, dict) else {}
    theirs, ours = record.get("run_id"), saved.metadata.get("run_id")
    if record.get("interrupted") is not True or (theirs is not None and theirs != ours):
        raise UserError(
            f"--resume: {path} is the model of a finished run, not of the interrupted run "
            f"in {saved.path}; resuming would replace it: move one of them elsewhere"
        )


def resume_settings(saved: Any, net: Network, fingerprint: str) -> dict[str, Any]:
    """Arguments of ``fit`` that continue the saved run; checks it matches data and network."""
    if saved.metadata.get("data_sha256") != fingerprint:
        raise UserError(
            f"--resume: the training data differ from those of {saved.path} (their SHA-256 "
            "differs): resume with the same data file"
        )
    # the same architecture; the seed only drew the first weights, which the checkpoint replaces
    architecture = {**saved.network.spec(), "seed": net.seed}
    if architecture != net.spec():
        raise UserError(f"--resume: the network in {saved.path} does not match its settings")
    net.params[...] = saved.network.params
    net.stats[...] = saved.network.stats  # running statistics of batch normalisation
    net.dropout_rng = saved.network.dropout_rng  # where dropout's masks go on from
    state = saved.state
    return {
        "optimizer": state.optimizer,
        "epochs": saved.remaining_epochs,
        "early_stopping": state.early_stopping,
        "schedule": state.schedule,
        "history": saved.history,
        "state": state,
    }
