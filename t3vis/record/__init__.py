"""Recording: ingesting checkpoints (predictions, projections, head importance, aggregate attention), training dynamics, the Trainer callback, store upgrades."""
