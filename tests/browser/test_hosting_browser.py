"""A hosted app's load: 3 visitors at once, each through every page, in a real `streamlit run` and headless Chromium.

Screenshots of every page of every session go to test-artifacts/ (git-ignored), and the server's peak memory to
test-artifacts/hosting-memory.txt. The store is small and its checkpoints have a (tiny, random) model, so that the
Attention heads and Instance pages load it and work on the selected example, as on the demo. bench/hosting.py
measures the same load on the real demo.
"""

from __future__ import annotations

import pytest

from app_browser import CHROMIUM, PROJECT, PeakMemory, serve_app, server_process
from hosting_load import PAGES, visit_every_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: install Debian's chromium (.ci/run does)"),
]
ARTIFACTS = PROJECT / "test-artifacts"
SESSIONS = 3
SERVING_LIMIT_MB = 1024  # the goal for serving (Streamlit Community Cloud gives an app about 2.7 GB in all)


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    """Two checkpoints of a tiny random BERT over 15 topic sentences, each with its weights' folder."""
    from helpers import write_topic_csv
    from t3vis.data.loading import load_examples
    from t3vis.fixtures.tiny_models import save_tiny_model
    from t3vis.model.access import load_model
    from t3vis.record.ingest import IngestConfig, ingest_checkpoint
    from t3vis.store.database import Store

    folder = tmp_path_factory.mktemp("hosting")
    examples = load_examples(write_topic_csv(folder / "topics.csv"))
    store = Store(folder / "hosted.duckdb", create=True)
    for step in (1, 2):
        model_dir = save_tiny_model(folder / f"model-{step}", num_labels=3, seed=step)
        bundle = load_model(model_dir, label_names=("business", "science", "sports"), device="cpu")
        ingest_checkpoint(store, bundle, examples, run_id="tiny", checkpoint=f"epoch-{step}", step=step, epoch=step,
                          path=str(model_dir), config=IngestConfig(projection="pca", batch_size=4))
    return store.path


def test_three_visitors_at_once_see_every_page_and_the_server_stays_under_1_gb(model_store):
    with serve_app(model_store) as url:
        memory = PeakMemory(server_process(url).pid)
        try:
            visits = visit_every_page(url, sessions=SESSIONS, shots=ARTIFACTS)
        finally:
            peak_mb = memory.stop()
    (ARTIFACTS / "hosting-memory.txt").write_text(
        f"server peak RSS with {SESSIONS} sessions through every page: {peak_mb:.0f} MB\n"
        + "".join(f"session {v.session} {v.page}: {v.seconds:.1f} s\n" for v in visits))
    assert len(visits) == SESSIONS * len(PAGES)
    assert all(visit.screenshot.stat().st_size > 10_000 for visit in visits)  # a drawn page, not a blank one
    assert [(visit.session, visit.page, visit.problems) for visit in visits if visit.problems] == []
    assert 0 < peak_mb < SERVING_LIMIT_MB
