"""Live computations behind the views on a loaded checkpoint: instance-scale heads, pruning and evaluation, token layout."""
