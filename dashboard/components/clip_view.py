"""One clip on screen: player, waveform, STFT and mel spectrograms, and where the detector sees trouble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.errors import BadInputError
from core.settings import settings
from core.signal.audio import load_clip
from core.signal.display import most_abnormal_window
from core.signal.features import FeatureParams, log_mel, stft_db
from core.workflows.explore import ClipDetails, clip_details
from dashboard.components import plots
from dashboard.components.text import md_literal

P = FeatureParams()


@st.cache_data(show_spinner=False, max_entries=64)
def _audio_views(path: str) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Signal, sample rate, STFT dB and log-mel dB of a clip (cached per path)."""
    clip = load_clip(path, max_duration_s=settings().max_clip_seconds)
    stft = stft_db(clip.signal, n_fft=P.n_fft, hop_length=P.hop_length)
    mel = log_mel(clip.signal, clip.sr, n_mels=P.n_mels, n_fft=P.n_fft, hop_length=P.hop_length)
    return clip.signal, clip.sr, stft, mel


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
        signal, sr, stft, mel = _audio_views(details.path)
    except BadInputError as exc:
        st.error(f"This clip cannot be read: {md_literal(exc)}. The file may have been moved or damaged.")
        return details
    facts = f"**{md_literal(details.machine)}** · {details.duration_s:.1f} s · {details.n_channels} ch"
    facts += "" if blind else f" · label: {details.label}"
    if details.score is not None:
        facts += f" · score **{details.score:.3g}** (threshold {details.threshold:.3g})"
    st.markdown(facts)
    if blind:
        st.caption(f"clip #{details.clip_id}")
    else:
        st.caption(clip_caption(details.clip_id, details.path), help=md_literal(details.path))
    window = None
    if details.frame_errors:
        window = most_abnormal_window(details.frame_errors, P.hop_length, sr)
    player, button = st.columns([4, 1])
    span = st.session_state.get(f"{key}_span", {}).get(clip_id)
    if span:
        player.audio(signal, sample_rate=sr, start_time=span[0], end_time=span[1], autoplay=True)
    else:
        player.audio(signal, sample_rate=sr)
    if window and button.button("▶ worst second", key=f"{key}_loudest_{clip_id}",
                                help=f"plays {window[0]:.1f}-{window[1]:.1f} s"):  # fmt: skip
        st.session_state[f"{key}_span"] = {clip_id: (int(window[0]), int(np.ceil(window[1])))}
        st.rerun()
    st.plotly_chart(plots.waveform(signal, sr), key=f"{key}_wave")
    if details.frame_errors:
        left, right = st.columns(2)
        left.plotly_chart(plots.errors_over_time(details.frame_errors, P.hop_length, sr, window), key=f"{key}_err")
        right.plotly_chart(plots.errors_per_band(details.band_errors, sr), key=f"{key}_band")
    if compact:
        st.plotly_chart(plots.spectrogram(mel, sr, P.hop_length, mel=True, title="Mel spectrogram"), key=f"{key}_mel")
    else:
        left, right = st.columns(2)
        left.plotly_chart(plots.spectrogram(stft, sr, P.hop_length, mel=False, title="STFT (dB)"), key=f"{key}_stft")
        right.plotly_chart(plots.spectrogram(mel, sr, P.hop_length, mel=True, title="Mel spectrogram (dB)"),
                           key=f"{key}_mel")  # fmt: skip
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
