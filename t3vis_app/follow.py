"""Following a running training: the sidebar's "Follow training" switch.

While it is on, a fragment (``st.fragment(run_every=POLL_SECONDS)``) looks at the store every few
seconds and reruns the whole app when a writer has committed something new (a checkpoint, an epoch
of training dynamics, a run), so that the checkpoint list, the Training page's curves and the Data
Map show it. A look is cheap: the file's stamp (modification time and size, no connection); only
when the stamp moved, one short read-only query (:mod:`t3vis.queries.store_changes`), which gives
up after ``LOCK_WAIT`` seconds while a writer holds the file and tries again at the next look.

A rerun keeps every choice in session state: run, split, layout, filters, the selected example, the
pruned heads. A checkpoint choice in ``FOLLOWS_LATEST`` that was on the latest checkpoint moves on to
the new latest one (following a training means watching its newest state); one on an earlier
checkpoint stays where the user put it.

:func:`check` is one look, callable without a browser (tests, bench/follow_training.py): it returns
whether the app must rerun, and has already let go of the checkpoint choices that follow the latest one when it does.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from t3vis.errors import StoreError
from t3vis.queries.store_changes import StoreContents, contents, file_stamp
from t3vis.store.database import Store
from t3vis_app import data, state

POLL_SECONDS = 2.0  # between two looks at the store
LOCK_WAIT = 0.5  # seconds a look waits for a writer's transaction before trying again at the next look
FOLLOW = "follow_training"  # the switch's choice in session state
# Checkpoint choices that move on to a new latest checkpoint when they were on the latest one:
# the sidebar's checkpoint and the Training page's "To checkpoint" of the flipped examples.
FOLLOWS_LATEST = ("checkpoint", "flip_after")

_SEEN = "_follow.seen"  # Seen: the store as this session's pages last showed it
_FRESH = "_follow.fresh"  # set by a full run: the fragment's first call in it only draws its caption
_SINCE = "_follow.since"  # time.time() when following started
_CHANGED = "_follow.changed_at"  # time.time() of the last new data noticed


@dataclass(frozen=True)
class Seen:
    """The store as the pages last showed it.

    ``stamp`` None: something was committed while the page read the store, so what it shows is unknown
    and the next look that can read the store reruns the app. ``contents`` None: unknown (a writer held
    the store); the next look after a change reruns the app."""

    path: str
    stamp: tuple | None
    contents: StoreContents | None
    run_id: str
    latest: str | None  # the run's latest checkpoint in the sidebar's list


def render(store: data.StoreHandle, run_id: str, checkpoints: list[str]) -> None:
    """The switch in the sidebar and, while it is on, the fragment that looks at the store.

    ``store``, ``run_id``, ``checkpoints``: what the sidebar read and shows (the checkpoint names in
    training order)."""
    with st.sidebar:
        on = state.toggle("Follow training", name=FOLLOW, help=(
            f"Look at the store every {POLL_SECONDS:g} s and redraw the page when a running training has "
            "committed a new checkpoint or epoch. Your choices stay as they are; a checkpoint choice on the latest "
            "checkpoint moves on to the new latest."))
        if not on:
            for key in (_SEEN, _FRESH, _SINCE, _CHANGED):
                _discard(st.session_state, key)
            return
        if _SINCE not in st.session_state:
            st.session_state[_SINCE] = time.time()
        remember(st.session_state, store, run_id, checkpoints)
        st.session_state[_FRESH] = True
        _look(store.path)


@st.fragment(run_every=POLL_SECONDS)
def _look(path: str) -> None:
    """Every POLL_SECONDS: one look; the whole app reruns when there is new data."""
    session = st.session_state
    fresh = session.get(_FRESH, False)
    session[_FRESH] = False
    if not fresh and check(session, data.open_store(path).database):
        st.rerun(scope="app")
    st.caption(caption(session))


def remember(session: MutableMapping, store: data.StoreHandle, run_id: str, checkpoints: list[str]) -> None:
    """Note what a full run of the page shows (its store's version, the run's checkpoints), for the next looks."""
    stamp = file_stamp(store.path)
    seen = session.get(_SEEN)
    if seen is not None and (seen.path, seen.stamp) == (store.path, stamp) and seen.contents is not None:
        known = seen.contents  # nothing was committed since the last query: no need for another
    else:
        try:
            known = contents(store.database, wait=LOCK_WAIT)
        except StoreError:
            known = None  # the page has read the store; the next look that can read it decides
    if data.open_store(store.path).version != store.version:
        stamp, known = None, None  # committed while this run read: the page may be behind, look again
    session[_SEEN] = Seen(path=store.path, stamp=stamp, contents=known, run_id=run_id,
                          latest=checkpoints[-1] if checkpoints else None)


def check(session: MutableMapping, store: Store) -> bool:
    """One look at ``store``: True when something new was committed since the page last showed it.

    Then the checkpoint choices of ``FOLLOWS_LATEST`` that were on the latest checkpoint are already dropped,
    so that the rerun the caller asks for puts them on the latest checkpoint it lists (their default).
    ``session``: the session state (or a mapping standing in for it)."""
    seen = session.get(_SEEN)
    if seen is None:
        return False  # not following
    stamp = file_stamp(store.path)
    if stamp == seen.stamp:
        return False
    try:
        now = contents(store, wait=LOCK_WAIT)
    except StoreError:
        return True  # the store became unreadable: the rerun shows why
    if now is None:
        return False  # a writer is in the middle of its transaction: look again next time
    if seen.stamp is not None and seen.contents is not None and now == seen.contents:
        session[_SEEN] = Seen(path=seen.path, stamp=stamp, contents=now, run_id=seen.run_id, latest=seen.latest)
        return False  # touched, nothing new to show
    latest = now.latest_checkpoint(seen.run_id)
    if latest is not None and latest != seen.latest:
        for name in FOLLOWS_LATEST:
            if name in session and session[name] == seen.latest:
                # Dropped rather than set to ``latest``: the rerun's widget then takes its default, the latest
                # checkpoint that run reads, which is newer than ``latest`` when a writer committed again in between.
                del session[name]
    session[_CHANGED] = time.time()
    return True


def caption(session: MutableMapping) -> str:
    """What the sidebar says under the switch: when new data was last noticed."""
    changed = session.get(_CHANGED)
    if changed is not None:
        return f"Following: new data at {_clock(changed)}."
    return f"Following since {_clock(session.get(_SINCE, time.time()))}: no new data yet."


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%H:%M:%S")


def _discard(session: MutableMapping, key: str) -> None:
    if key in session:
        del session[key]
