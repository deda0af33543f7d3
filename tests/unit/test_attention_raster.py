"""A long input's attention matrix as one image: one pixel per token up to the chart's side, pooled blocks above."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from t3vis.charts import attention_raster_chart, pooled_attention


def _matrix(size: int, seed: int = 0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(size=(size, size))
    weights = np.exp(scores)
    return weights / weights.sum(1, keepdims=True)  # rows sum to 1, like attention


def _image_size(chart) -> tuple[int, int]:
    spec = chart.to_dict()
    urls = [row["url"] for dataset in spec["datasets"].values() for row in dataset if "url" in row]
    data = base64.b64decode(urls[0].split(",", 1)[1])
    return Image.open(io.BytesIO(data)).size


def test_pooled_blocks_keep_each_row_a_distribution_and_equal_a_hand_computation():
    attention = _matrix(10)
    pooled = pooled_attention(attention, 4)  # blocks of positions [0,2) [2,5) [5,8) [8,10)
    assert pooled.shape == (4, 4)
    np.testing.assert_allclose(pooled.sum(1), 1.0)
    np.testing.assert_allclose(pooled[1, 2], attention[2:5, 5:8].sum(1).mean())
    assert pooled_attention(attention, 16) is attention  # small matrices stay as they are


def test_a_2048_token_matrix_is_drawn_as_an_image_of_blocks_with_a_band_per_pixel_row():
    tokens = [f"t{index}" for index in range(2048)]
    attention = _matrix(2048)
    chart = attention_raster_chart(tokens, attention, title="L0·H1", side=512)
    assert _image_size(chart) == (512, 512)
    spec = chart.to_dict()
    bands = max((rows for rows in spec["datasets"].values()), key=len)
    assert len(bands) == 512  # one per pixel row: a block of 4 query tokens (a token's row would be 1/4 pixel)
    assert bands[5]["query"] == "20–23: t20 t21 t22 t23" and bands[5]["query_index"] == 20  # click: its first token
    block_mean = attention[20:24].mean(0)  # the keys the block attends to most, by its mean row
    best = int(np.argmax(block_mean))
    assert bands[5]["top_keys"].startswith(f"{best}:t{best} {block_mean[best]:.2f}")
    assert "2048 tokens in 512×512 blocks" in spec["title"]
    small = attention_raster_chart(tokens[:300], _matrix(300), side=512)
    assert _image_size(small) == (300, 300)  # one pixel per query and key
    rows = max((rows for rows in small.to_dict()["datasets"].values()), key=len)
    assert len(rows) == 300 and rows[5]["query"] == "5:t5"  # hover and click per token
