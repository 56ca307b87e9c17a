"""One clip on screen: player, waveform, STFT and mel spectrograms, and where the detector sees trouble."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import streamlit as st
from cachetools import LRUCache

from core.errors import BadInputError
from core.settings import settings
from core.signal.audio import load_clip
from core.signal.display import PLAYER_SECONDS, ClipViews, clip_views, most_abnormal_window
from core.signal.features import FeatureParams
from core.workflows.explore import ClipDetails, clip_details
from dashboard.components import plots
from dashboard.components.format import numbers_apart
from dashboard.components.text import md_literal

P = FeatureParams()


VIEW_CACHE_BYTES = 256 << 20  # the views of recent clips kept for every session of this server, by size
_views: LRUCache = LRUCache(maxsize=VIEW_CACHE_BYTES, getsizeof=lambda views: views.nbytes)
_views_lock = threading.Lock()


def _audio_views(path: str) -> ClipViews:
    """The bounded views of a clip (:func:`core.signal.display.clip_views`), cached by path and change time
    in at most ``VIEW_CACHE_BYTES`` (a long clip cannot fill the server's memory, however many are opened)."""
    key = (path, os.stat(path).st_mtime_ns) if os.path.exists(path) else (path, None)
    with _views_lock:
        found = _views.get(key)
    if found is None:
        limits = settings()
        clip = load_clip(path, max_duration_s=limits.max_clip_seconds, max_sample_rate=limits.max_sample_rate)
        found = clip_views(clip.signal, clip.sr, n_fft=P.n_fft, hop_length=P.hop_length, n_mels=P.n_mels)
        with _views_lock:
            _views[key] = found  # a views object larger than the whole cache is simply not kept
    return found


def clip_caption(clip_id: int, path: str) -> str:
    """How a clip is named on screen (Markdown): its id and file name (the full path is in the tooltip)."""
    return f"clip #{clip_id} · {md_literal(Path(path).name)}"


def render_clip(clip_id: int, *, key: str, compact: bool = False, blind: bool = False) -> ClipDetails | None:
    """Draw the clip; returns its details (``None`` when it cannot be shown, with the reason on screen).

    ``blind`` (blind review) leaves out what could sway a verdict: the ground-truth label and the file
    path (MIMII and DCASE paths name the label)."""
    details = clip_details(clip_id)
    if details is None:
        st.warning(f"Clip {clip_id} is no longer in the database.")
        return None
    try:
        views = _audio_views(details.path)
        sr = views.sr
    except BadInputError as exc:
        st.error(f"This clip cannot be read: {md_literal(exc)}. The file may have been moved or damaged.")
        return details
    facts = f"**{md_literal(details.machine)}** · {details.duration_s:.1f} s · {details.n_channels} ch"
    facts += "" if blind else f" · label: {details.label}"
    if details.score is not None:
        score, threshold = numbers_apart(details.score, details.threshold)  # plain decimals, never "5" for 4.996
        facts += f" · score **{score}** (threshold {threshold})"
    st.markdown(facts)
    if blind:
        st.caption(f"clip #{details.clip_id}")
    else:
        st.caption(clip_caption(details.clip_id, details.path), help=md_literal(details.path))
    window = None
    if details.frame_errors:
        window = most_abnormal_window(details.frame_errors, P.hop_length, sr)
    player, button = st.columns([3, 2] if compact else [4, 1])  # half a page: room for "▶ worst second"
    span = st.session_state.get(f"{key}_span", {}).get(clip_id)
    if span:
        player.audio(views.player, sample_rate=sr, start_time=span[0], end_time=span[1], autoplay=True)
    else:
        player.audio(views.player, sample_rate=sr)
    if views.duration_s > PLAYER_SECONDS:
        player.caption(f"The player holds the first {PLAYER_SECONDS:g} s of this {views.duration_s:.0f} s clip.")
    if window and button.button("▶ worst second", key=f"{key}_loudest_{clip_id}",
                                help=f"plays {window[0]:.1f}-{window[1]:.1f} s"):  # fmt: skip
        st.session_state[f"{key}_span"] = {clip_id: (int(window[0]), int(np.ceil(window[1])))}
        st.rerun()
    st.plotly_chart(plots.waveform(views.envelope), key=f"{key}_wave")
    if details.frame_errors:
        left, right = st.columns(2)
        left.plotly_chart(plots.errors_over_time(details.frame_errors, P.hop_length, sr, window), key=f"{key}_err")
        right.plotly_chart(plots.errors_per_band(details.band_errors, sr), key=f"{key}_band")
    if compact:  # half a page: one spectrogram at a time, the mel one first
        mel_tab, stft_tab = st.tabs(["Mel spectrogram", "STFT"])
        mel = plots.spectrogram(views.mel_db, sr, views.hop_length, mel=True, title="Mel spectrogram")
        mel_tab.plotly_chart(mel, key=f"{key}_mel")
        stft = plots.spectrogram(views.stft_db, sr, views.hop_length, mel=False, title="STFT (dB)")
        stft_tab.plotly_chart(stft, key=f"{key}_stft")
    else:
        left, right = st.columns(2)
        stft = plots.spectrogram(views.stft_db, sr, views.hop_length, mel=False, title="STFT (dB)")
        left.plotly_chart(stft, key=f"{key}_stft")
        mel = plots.spectrogram(views.mel_db, sr, views.hop_length, mel=True, title="Mel spectrogram (dB)")
        right.plotly_chart(mel, key=f"{key}_mel")
    return details


def render_history(details: ClipDetails) -> None:
    """Every verdict on the clip, oldest first; names, types and notes shown as typed (never as Markdown)."""
    if not details.history:
        st.caption("No verdict yet.")
        return
    for v in details.history:
        kind = f" ({md_literal(v.anomaly_type)})" if v.anomaly_type else ""
        action = f"undid {v.verdict}" if v.is_undo else f"**{v.verdict}**{kind}"
        note = f" — {md_literal(v.note, multiline=True)}" if v.note and not v.is_undo else ""
        st.markdown(f"- {v.created_at:%Y-%m-%d %H:%M} · {md_literal(v.annotator)}: {action}{note}")
