"""Model access: loading a checkpoint and its tokenizer, and the one attention mechanism that captures attention and masks heads."""
