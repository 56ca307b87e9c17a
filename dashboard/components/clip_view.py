"""One clip on screen: player, waveform, STFT and mel spectrograms, and where the detector sees trouble.

Listening as annotators do: the most anomalous span (or any span selected on the error-over-time chart or the
spectrogram) plays exactly that span, sliced from the signal, and loops; half speed (the samples played at half
their rate, an octave lower) spreads a short transient out.  The span playing and the most anomalous one are
outlined on the spectrogram."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st
from cachetools import LRUCache

from core.errors import BadInputError
from core.signal.display import PLAYER_SECONDS, ClipViews, audio_span, clip_views, most_abnormal_window
from core.signal.features import FeatureParams
from core.workflows.clip_store import is_uri, read_clip
from core.workflows.explore import ClipDetails, Ruling, clip_details
from dashboard.components import plots
from dashboard.components.auth import role_shown
from dashboard.components.format import numbers_apart
from dashboard.components.text import md_literal

P = FeatureParams()


VIEW_CACHE_BYTES = 256 << 20  # the views of recent clips kept for every session of this server, by size
_views: LRUCache = LRUCache(maxsize=VIEW_CACHE_BYTES, getsizeof=lambda views: views.nbytes)
_views_lock = threading.Lock()
_prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-views")  # one clip ahead, never more
NO_MODE_BAR = {"displayModeBar": False}  # for charts too narrow for it: a box still selects by dragging
WORST = "the most anomalous second"
SELECTED = "your selection"


def _audio_views(path: str) -> ClipViews:
    """The bounded views of a clip (:func:`core.signal.display.clip_views`), cached by path and change time
    in at most ``VIEW_CACHE_BYTES`` (a long clip cannot fill the server's memory, however many are opened)."""
    local = not is_uri(path) and os.path.exists(path)  # an s3:// clip by its URI alone
    key = (path, os.stat(path).st_mtime_ns) if local else (path, None)
    with _views_lock:
        found = _views.get(key)
    if found is None:
        clip = read_clip(path)  # a local file or an s3:// object, with the MAX_CLIP_SECONDS/MAX_SAMPLE_RATE limits
        found = clip_views(clip.signal, clip.sr, n_fft=P.n_fft, hop_length=P.hop_length, n_mels=P.n_mels)
        with _views_lock:
            _views[key] = found  # a views object larger than the whole cache is simply not kept
    return found


def _prefetch_quietly(path: str) -> None:
    try:
        _audio_views(path)
    except Exception:  # the clip is shown (with its reason) when its turn comes
        logging.getLogger(__name__).debug("prefetching %s failed", path, exc_info=True)


def prefetch(path: str) -> Future:
    """Prepare the views of the clip at ``path`` in the background (the next clip of a queue), so that it is on
    screen at once after the current verdict."""
    return _prefetcher.submit(_prefetch_quietly, path)


def prefetched() -> None:
    """Wait until every clip asked for has been prepared (benchmarks and tests)."""
    _prefetcher.submit(lambda: None).result()


def clear_view_cache() -> None:
    """Forget every clip's views (a cold start, for benchmarks and tests)."""
    with _views_lock:
        _views.clear()


def clip_caption(clip_id: int, path: str) -> str:
    """How a clip is named on screen (Markdown): its id and file name (the full path is in the tooltip)."""
    return f"clip #{clip_id} · {md_literal(Path(path).name)}"


# --- the span that plays ----------------------------------------------------------------------------------------


def playing_span(key: str, clip_id: int) -> tuple[float, float, str] | None:
    """``(start_s, end_s, why)`` of the span of ``clip_id`` looping in the ``key`` view, or ``None`` (whole clip)."""
    return st.session_state.get(f"{key}_span", {}).get(clip_id)


def set_span(key: str, clip_id: int, span: tuple[float, float] | None, why: str = SELECTED) -> None:
    """Loop ``span`` (s) of ``clip_id`` in the ``key`` view (one clip at a time); ``None`` plays the whole clip."""
    st.session_state[f"{key}_span"] = {clip_id: (float(span[0]), float(span[1]), why)} if span else {}


def selected_span(state) -> tuple[float, float] | None:
    """The time span ``(start_s, end_s)`` a Plotly selection event covers (``st.plotly_chart``'s state): the
    x range of its box, else of its selected points; ``None`` when nothing of any width is selected."""
    selection = (state or {}).get("selection") or {}
    boxes = [box for box in selection.get("box") or [] if len(box.get("x") or ()) == 2]
    if boxes:
        start, end = sorted(float(x) for x in boxes[-1]["x"])
    else:
        xs = [float(point["x"]) for point in selection.get("points") or [] if "x" in point]
        if not xs:
            return None
        start, end = min(xs), max(xs)
    return (max(0.0, start), end) if end > start else None


def _on_select(key: str, clip_id: int, chart_key: str) -> None:
    span = selected_span(st.session_state.get(chart_key))
    if span:
        set_span(key, clip_id, span, SELECTED)


def _selectable_chart(fig, *, key: str, clip_id: int, chart: str, config: dict | None = None) -> None:
    """A chart on which a box selects the time span to loop (its drag mode is ``select``: no mode bar needed)."""
    chart_key = f"{key}_{chart}_{clip_id}"  # per clip: a selection never carries over to the next one
    st.plotly_chart(fig, key=chart_key, on_select=partial(_on_select, key, clip_id, chart_key), selection_mode="box",
                    config=config)  # fmt: skip


# --- the parts of a clip on screen ------------------------------------------------------------------------------


def load_view(clip_id: int, *, blind: bool = False, details: ClipDetails | None = None,
              ) -> tuple[ClipDetails | None, ClipViews | None]:  # fmt: skip
    """The clip's details (``details`` when the caller read them already) and views; when it cannot be shown,
    what is missing is ``None`` and the reason is on screen.  Also draws the clip's facts (``blind``: without its
    label and file, see :func:`render_clip`)."""
    details = details or clip_details(clip_id)
    if details is None:
        st.warning(f"Clip {clip_id} is no longer in the database.")
        return None, None
    try:
        views = _audio_views(details.path)
    except BadInputError as exc:
        st.error(f"This clip cannot be read: {md_literal(exc)}. The file may have been moved or damaged.")
        return details, None
    facts = f"**{md_literal(details.machine)}** · {details.duration_s:.1f} s · {details.n_channels} ch"
    facts += "" if blind else f" · label: {details.label}"
    if details.score is not None:
        score, threshold = numbers_apart(details.score, details.threshold)  # plain decimals, never "5" for 4.996
        facts += f" · score **{score}** (threshold {threshold})"
    left, right = st.columns([3, 2])
    left.markdown(facts)
    if blind:
        right.caption(f"clip #{details.clip_id}")
    else:
        right.caption(clip_caption(details.clip_id, details.path), help=md_literal(details.path))
    return details, views


def worst_span(details: ClipDetails, views: ClipViews) -> tuple[float, float] | None:
    """The most anomalous second of the clip (s), from its frame errors; ``None`` without them."""
    if not details.frame_errors:
        return None
    return most_abnormal_window(details.frame_errors, P.hop_length, views.sr)


def render_player(
    details: ClipDetails, views: ClipViews, *, key: str, shortcut: str | None = None, compact: bool = False
) -> None:
    """The player: the whole clip, or the span chosen (looped, exact to the sample); a button (with
    ``shortcut``) that loops the most anomalous second, or back to the whole clip; a half-speed switch.
    ``compact`` (half a page): the player on its own line, the button and the switch under it."""
    sr, clip_id, window = views.sr, details.clip_id, worst_span(details, views)
    span = playing_span(key, clip_id)
    if compact:
        player = st.container()
        play, speed = st.columns([3, 2], vertical_alignment="center")
    else:
        column, play, speed = st.columns([3.6, 1.4, 1.2], vertical_alignment="center")
        player = column.container(gap=None)  # the player and its line: no more height than needed
    half = speed.toggle("Half speed", key=f"{key}_half", help="Plays at half speed, an octave lower: short "
                        "transients are easier to hear")  # fmt: skip
    rate = sr // 2 if half else sr
    if span:
        player.audio(audio_span(views.player, sr, span[0], span[1]), sample_rate=rate, loop=True, autoplay=True)
        player.caption(f"Looping {span[0]:.2f}–{span[1]:.2f} s ({span[2]})" + (" at half speed" if half else ""))
        play.button("Play whole clip", key=f"{key}_whole_{clip_id}", shortcut=shortcut, use_container_width=True,
                    on_click=set_span, args=(key, clip_id, None))  # fmt: skip
        return
    player.audio(views.player, sample_rate=rate)
    player.caption(  # always one line under the player, as while looping: what is below it never moves
        f"The player holds the first {PLAYER_SECONDS:g} s of this {views.duration_s:.0f} s clip."
        if views.duration_s > PLAYER_SECONDS
        else f"The whole clip, {views.duration_s:.1f} s" + (" at half speed" if half else "")
    )
    if window:
        play.button("Play most anomalous", key=f"{key}_loudest_{clip_id}", shortcut=shortcut,
                    use_container_width=True, on_click=set_span, args=(key, clip_id, window, WORST),
                    help=f"Loops {window[0]:.2f}–{window[1]:.2f} s, {WORST}; or select a span on the error "
                         "chart or the spectrogram to loop it")  # fmt: skip


def render_spectrogram(details: ClipDetails, views: ClipViews, *, key: str, height: int = 280,
                       title: str = "Mel spectrogram (dB)", tight: bool = False) -> None:  # fmt: skip
    """The mel spectrogram, the most anomalous second and the span playing outlined; a box drawn on it loops
    that span; ``tight``: in smaller margins (see :func:`plots.spectrogram`)."""
    playing = playing_span(key, details.clip_id)
    marks = tuple(span for span in (worst_span(details, views), playing[:2] if playing else None) if span)
    mel = plots.spectrogram(views.mel_db, views.sr, views.hop_length, mel=True, title=title, height=height,
                            spans=marks, selectable=True, tight=tight)  # fmt: skip
    _selectable_chart(mel, key=key, clip_id=details.clip_id, chart="mel")


@dataclass(frozen=True)
class ErrorScale:
    """The error axes two clips share when shown side by side: ``(low, high)`` over time and per band."""

    over_time: tuple[float, float]
    per_band: tuple[float, float]


def shared_error_scale(*clips: ClipDetails | None) -> ErrorScale | None:
    """One error scale for ``clips`` scored by the same model, so that beside each other a normal clip's small
    errors look small (each chart scaled alone makes any clip's errors fill its height); ``None`` when fewer than
    two such clips have errors of the same model and explanation version."""
    shown = [c for c in clips if c is not None and c.frame_errors and c.band_errors]
    if len(shown) < 2 or len({(c.model_id, c.explanation_version) for c in shown}) > 1:
        return None  # another model, or errors stored by an earlier explain() of the model's detector
    spans = [_span([e for c in shown for e in getattr(c, kind)]) for kind in ("frame_errors", "band_errors")]
    return ErrorScale(*spans) if all(spans) else None


def _span(values: list[float]) -> tuple[float, float] | None:
    """``(low, high)`` of an axis showing ``values`` and zero, a little room above; ``None`` if none is finite."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return None
    low, high = min(float(finite.min()), 0.0), float(finite.max())
    return low, high + 0.05 * (high - low or 1.0)


def render_details(details: ClipDetails, views: ClipViews, *, key: str, stft: bool = True,
                   scale: ErrorScale | None = None, compact: bool = False) -> None:  # fmt: skip
    """Waveform, the detector's error over time (a box on it loops that span) and per band (on ``scale`` when
    given), the STFT.  ``compact`` (half a page): the two error charts, a quarter of the page each, without
    Plotly's mode bar, which would wrap over their titles."""
    sr = views.sr
    small = NO_MODE_BAR if compact else None
    st.plotly_chart(plots.waveform(views.envelope), key=f"{key}_wave")
    if details.frame_errors:
        left, right = st.columns(2)
        with left:
            errors = plots.errors_over_time(details.frame_errors, P.hop_length, sr, worst_span(details, views),
                                            selectable=True, y_range=scale and scale.over_time)  # fmt: skip
            _selectable_chart(errors, key=key, clip_id=details.clip_id, chart="err", config=small)
        band = plots.errors_per_band(details.band_errors, sr, y_range=scale and scale.per_band)
        right.plotly_chart(band, key=f"{key}_band", config=small)
    if stft:
        fig = plots.spectrogram(views.stft_db, sr, views.hop_length, mel=False, title="STFT (dB)")
        st.plotly_chart(fig, key=f"{key}_stft")


def render_clip(clip_id: int, *, key: str, compact: bool = False, blind: bool = False,
                scale: ErrorScale | None = None, details: ClipDetails | None = None) -> ClipDetails | None:  # fmt: skip
    """Draw the clip; returns its details (``None`` when it cannot be shown, with the reason on screen).

    ``blind`` (blind review) leaves out what could sway a verdict: the ground-truth label and the file
    path (MIMII and DCASE paths name the label).  ``scale``: error axes shared with a clip shown beside it;
    ``details``: the clip's, when the caller read them already."""
    details, views = load_view(clip_id, blind=blind, details=details)
    if views is None:
        return details
    render_player(details, views, key=key, compact=compact)
    render_details(details, views, key=key, stft=not compact, scale=scale, compact=compact)
    if compact:  # half a page: one spectrogram at a time, the mel one first
        mel_tab, stft_tab = st.tabs(["Mel spectrogram", "STFT"])
        with mel_tab:
            render_spectrogram(details, views, key=key, title="Mel spectrogram")
        stft = plots.spectrogram(views.stft_db, views.sr, views.hop_length, mel=False, title="STFT (dB)")
        stft_tab.plotly_chart(stft, key=f"{key}_stft")
    else:
        render_spectrogram(details, views, key=key)
    return details


def render_history(details: ClipDetails, *, final: bool = False) -> None:
    """Every verdict on the clip, oldest first; names, types and notes shown as typed (never as Markdown).
    ``final``: the adjudicators' final verdicts too, in their place, the standing one marked (a clip settled on
    the Review page does not look disputed)."""
    rulings = details.rulings if final else []
    if not details.history and not rulings:
        st.caption("No verdict yet.")
        return
    lines = []
    for v in details.history:
        kind = f" ({md_literal(v.anomaly_type)})" if v.anomaly_type else ""
        action = f"undid {v.verdict}" if v.is_undo else f"**{v.verdict}**{kind}"
        note = f" — {md_literal(v.note, multiline=True)}" if v.note and not v.is_undo else ""
        who = f"{md_literal(v.annotator)} ({md_literal(role_shown(v.role))})"
        lines.append((v.created_at, f"- {v.created_at:%Y-%m-%d %H:%M} · {who}: {action}{note}"))
    lines += [(r.created_at, _ruling_line(r, standing=n == len(rulings))) for n, r in enumerate(rulings, start=1)]
    for _, line in sorted(lines, key=lambda item: item[0]):  # stable: a verdict before a ruling of the same time
        st.markdown(line)


def _ruling_line(r: Ruling, *, standing: bool) -> str:
    """A final verdict in the history (Markdown): the standing one in bold, an earlier one said to be replaced."""
    kind = f" ({md_literal(r.anomaly_type)})" if r.anomaly_type else ""
    ruling = f"**final verdict: {r.verdict}**{kind}" if standing else f"final verdict {r.verdict}{kind}, since replaced"
    who = f"{md_literal(r.adjudicator)} ({md_literal(role_shown(r.role))})"
    return f"- {r.created_at:%Y-%m-%d %H:%M} · {who}: {ruling} — {md_literal(r.reason, multiline=True)}"
