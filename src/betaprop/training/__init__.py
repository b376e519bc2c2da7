"""Step 6: optimizers, schedules, the training step and the loop over epochs."""
