"""The built-in demo: a generated topic corpus and the fine-tuning run that records it."""
