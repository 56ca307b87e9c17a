"""Discovering clips and what their location says about them.

Four layouts are understood; each file is matched on its full path, the most
specific layout first:

* DCASE 2021+ Task 2: ``<type>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_*.wav``
  (unlabelled evaluation files ``section_XX_*.wav`` are kept with label ``unknown``)
* DCASE 2020 Task 2: ``<type>/{train,test}/{normal,anomaly}_id_XX_*.wav``
* MIMII: ``[<snr>/]<type>/id_XX/{normal,abnormal}/*.wav`` (any folders above are allowed;
  an ancestor named like ``6_dB_fan`` or ``-6dB`` gives the SNR)
* plain: any other audio file, unlabelled; ``<type>/id_XX/<file>`` (how field snippets
  arrive) names the machine ``type/id_XX``, else the parent folder names the type (``id_00``).

Pure path logic: nothing here opens a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from core.signal.audio import AUDIO_SUFFIXES
from core.vocabulary import Label, Split

NORMAL, ABNORMAL, UNKNOWN = Label.NORMAL, Label.ABNORMAL, Label.UNKNOWN
TRAIN, TEST, NO_SPLIT = Split.TRAIN, Split.TEST, Split.NONE

_DCASE2021 = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<rest>.+)$",
    re.IGNORECASE,
)
_DCASE2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<id>\d+)_(?P<rest>.+)$", re.IGNORECASE)
_DCASE_EVAL = re.compile(r"^section_(?P<section>\d+)_(?P<rest>.+)$", re.IGNORECASE)  # unlabelled evaluation files
_MACHINE_ID = re.compile(r"^(?:id|section)_\d+$", re.IGNORECASE)
_SNR = re.compile(r"^(?P<snr>[-+]?\d+(?:\.\d+)?)_?db(?:_.*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class DiscoveredClip:
    """What a clip's location says about it.

    ``label`` is ``normal``, ``abnormal`` or ``unknown``; ``split`` is ``train``,
    ``test`` or ``none`` (no hint); ``snr_db`` is the MIMII mixing SNR when a folder
    names it; ``domain`` is DCASE 2021+'s ``source``/``target``.
    """

    path: str
    layout: str
    machine_type: str
    machine_id: str
    label: str
    split: str
    snr_db: float | None = None
    domain: str | None = None

    @property
    def machine(self) -> str:
        """``type/id``, the key a machine is known by."""
        return f"{self.machine_type}/{self.machine_id}"


def _label(word: str) -> str:
    return ABNORMAL if word.lower() in ("anomaly", "abnormal") else NORMAL


def _snr_of(parts: tuple[str, ...]) -> float | None:
    for part in reversed(parts):
        match = _SNR.match(part)
        if match:
            return float(match["snr"])
    return None


def describe(path: str | os.PathLike) -> DiscoveredClip:
    """Classify one audio file by its path.

    Give the full path: the folders above the file carry the layout, so the answer
    does not depend on which folder was pointed at.
    """
    full = PurePath(path)
    parts = full.parts
    stem = full.stem
    parent = parts[-2] if len(parts) >= 2 else ""
    grandparent = parts[-3] if len(parts) >= 3 else ""

    if parent.lower() in (TRAIN, TEST) and grandparent:
        match = _DCASE2021.match(stem)
        if match:
            return DiscoveredClip(
                str(full),
                "dcase2021",
                grandparent,
                f"section_{match['section']}",
                _label(match["label"]),
                match["split"].lower(),
                domain=match["domain"].lower(),
            )
        match = _DCASE2020.match(stem)
        if match:
            return DiscoveredClip(
                str(full),
                "dcase2020",
                grandparent,
                f"id_{match['id']}",
                _label(match["label"]),
                parent.lower(),
            )
        match = _DCASE_EVAL.match(stem)
        if match:
            return DiscoveredClip(
                str(full),
                "dcase2021",
                grandparent,
                f"section_{match['section']}",
                UNKNOWN,
                parent.lower(),
            )
    if parent.lower() in (NORMAL, ABNORMAL) and len(parts) >= 4:
        return DiscoveredClip(
            str(full),
            "mimii",
            parts[-4],
            grandparent,
            _label(parent),
            NO_SPLIT,
            snr_db=_snr_of(parts[:-4]),
        )
    if _MACHINE_ID.match(parent) and grandparent:  # field snippets: <type>/<id>/<file>
        return DiscoveredClip(str(full), "plain", grandparent, parent, UNKNOWN, NO_SPLIT)
    machine_type = parent or "unsorted"
    return DiscoveredClip(str(full), "plain", machine_type, "id_00", UNKNOWN, NO_SPLIT)


def is_audio_path(path: str | os.PathLike) -> bool:
    """Whether the name has an audio suffix we read (``.wav``, ``.flac``, any case)."""
    return PurePath(path).suffix.lower() in AUDIO_SUFFIXES


def discover(root: str | os.PathLike) -> list[DiscoveredClip]:
    """Every audio file below ``root`` (or ``root`` itself if it is a file), described, sorted by path.

    Hidden files and folders are skipped; symbolic links are not followed.
    """
    base = Path(root).resolve()
    if base.is_file():
        return [describe(base)]
    found = []
    for folder, subfolders, files in os.walk(base):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and is_audio_path(name):
                found.append(describe(Path(folder) / name))
    return sorted(found, key=lambda clip: clip.path)
