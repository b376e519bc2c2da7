"""Everything betaprop reads or writes: model files, checkpoints, CSV and bundled data."""
