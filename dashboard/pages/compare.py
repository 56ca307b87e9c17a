"""Compare models: two models of a machine side by side on the same test clips, the clips where they disagree,
and training a detector for a machine from here.  Each section is one small function, so more can sit beside them."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.access import Action
from core.commands import core_command
from core.detection.registry import AUTO, CHOSEN_ONLY, detector_names
from core.detection.selection import (
    FAULT_WEIGHT,
    FAULTS,
    FRONT_END_NAMES,
    OTHER_WEIGHT,
    POOLING_NAMES,
    candidate_name,
    detector_name,
    name_of,
)
from core.errors import MachineSoundError
from core.workflows.catalogue import machine_keys
from core.workflows.comparison import Comparison, compare_models, model_choices, scope_legend
from core.workflows.evaluation import automatic_choice
from core.workflows.training import MachineTraining, activate, active_model_id, train_and_score, train_settings
from core.workflows.triage import clip_address, review_is_blind
from dashboard.components import plots
from dashboard.components.annotator import action_button, refusal
from dashboard.components.auth import current_actor
from dashboard.components.format import duration, fixed, number
from dashboard.components.pickers import machine_picker
from dashboard.components.progress import progress_bar
from dashboard.components.text import md_literal

TRAIN_NOTE_KEY = "compare_train_note"  # what the last training did, shown after the rerun
TRAIN_FOLLOWS_KEY = "compare_train_follows"  # the page's machine that Machine to train last followed


def clip_link(machine: str, clip_id: int, page: str = "explore") -> str:
    """The relative URL of ``page`` opened on one clip (``?machine=TYPE%2FID&clip=ID``, read by Explore and Triage)."""
    return clip_address(page, machine, clip_id)


def _pick_models(choices: dict[int, str]) -> tuple[int, int]:
    """Model A and Model B (preselected by the Supervised training page's button, else the two newest)."""
    ids = list(choices)
    preselected = st.session_state.get("compare_models", ids[:2])
    left, right = st.columns(2)
    a = left.selectbox("Model A", ids, index=ids.index(preselected[0]) if preselected[0] in ids else 0,
                       format_func=choices.get)  # fmt: skip
    b = right.selectbox("Model B", ids, index=ids.index(preselected[1]) if preselected[1] in ids else 1,
                        format_func=choices.get)  # fmt: skip
    return a, b


def _side_by_side(result: Comparison) -> None:
    """The test set, the warnings, each model's confusion matrix and the metrics table."""
    st.caption(f"Test set: {md_literal(result.test_set)}, all {result.n_test} scored by both models. Abnormal is the "
               "positive class.")  # fmt: skip
    for warning in result.warnings:
        st.warning(md_literal(warning))
    cols = st.columns(len(result.results))
    for index, (column, r) in enumerate(zip(cols, result.results, strict=True)):
        title = f"{r.name} at {number(r.at_threshold.threshold)}"  # as the Thresholds page writes a threshold
        column.plotly_chart(plots.confusion(r.at_threshold.confusion, title), key=f"cm_{index}")
    table = pd.DataFrame(  # every figure with three decimals: 0.520 beside 0.929, 1.000 for a perfect recall
        {
            r.name: {
                "precision": fixed(r.at_threshold.precision),
                "recall": fixed(r.at_threshold.recall),
                "F1": fixed(r.at_threshold.f1),
                "accuracy": fixed(r.at_threshold.accuracy),
                "AUC": fixed(r.auc),
                "pAUC": fixed(r.pauc),
            }  # fmt: skip
            for r in result.results
        }
    )
    st.dataframe(table, key="compare_metrics", column_config={r.name: st.column_config.TextColumn(alignment="right")
                                                              for r in result.results})  # fmt: skip


def _disagreements(machine: str, result: Comparison) -> None:
    """The graded clips one model flags and the other passes, each a link to the clip on the Explore page."""
    st.subheader("Where they disagree")
    if not result.disagreements:
        st.caption("The two models flag and pass the same graded clips at their thresholds.")
        return
    a, b = (r.name for r in result.results)
    blind = review_is_blind(current_actor())  # an annotator judging blind sees no label, nor a file name that says it
    # the link first, and short column names (A, B): every column in view at 1280 px, however long the models' names
    rows = [{"open": clip_link(machine, d.clip_id), "clip": d.clip_id,
             **({} if blind else {"file": d.file, "label": d.label}), "A score": number(d.scores[0]),
             "A flags": d.flagged[0], "B score": number(d.scores[1]), "B flags": d.flagged[1]}
            for d in result.disagreements]  # fmt: skip
    st.caption(f"{len(rows)} of the {result.n_test} graded clips, highest score of A first; each at the model's own "
               f"threshold. A is {md_literal(a)}, B is {md_literal(b)}. Click **Open** to hear and see a clip on the "
               "Explore page.")  # fmt: skip
    right = st.column_config.TextColumn(alignment="right")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="compare_disagreements",
                 column_config={"open": st.column_config.LinkColumn("open", display_text="Open"), "A score": right,
                                "B score": right})  # fmt: skip


def _activate_buttons(machine: str, result: Comparison) -> None:
    active = active_model_id(machine)
    actor = current_actor()
    refused = refusal(actor, Action.ACTIVATE_MODEL)  # with sign-in off, a name first: the change is audited
    buttons = st.columns(len(result.results))
    for column, r in zip(buttons, result.results, strict=True):
        if r.model_id == active:
            column.caption(f"{md_literal(r.name)} is the active model of {md_literal(machine)}.")
        elif column.button(f"Make {md_literal(r.name)} active", key=f"activate_{r.model_id}", disabled=bool(refused),
                           help=refused):  # fmt: skip
            activate(machine, model_id=r.model_id, actor=actor)
            st.toast(f"{md_literal(r.name)} now scores {md_literal(machine)}'s clips; new flags follow its threshold.")
            st.rerun()
    if refused and any(r.model_id != active for r in result.results):  # said on the page, not only in the tooltip
        st.caption(refused)


def _comparison(machine: str) -> None:
    """Model A against Model B on the machine's graded clips."""
    choices = dict(model_choices(machine))
    if len(choices) < 2:
        trained = choices.values()  # each named by model_name: the detector in words, then " vN (scope)"
        other = next((name for name in detector_names()
                      if not any(label.startswith(f"{detector_name(name)} v") for label in trained)), None)  # fmt: skip
        how = f"for example {detector_name(other)}" if other else "a retrained version"
        st.info(f"{md_literal(machine)} has only one model so far. Train another to compare ({how}) with "
                "**Train detector** below.")  # fmt: skip
        return
    a, b = _pick_models(choices)
    st.caption(md_literal(scope_legend(machine)))
    if a == b:
        st.info("Model A and Model B are the same model: pick two different models to compare them.")
        return
    result = compare_models(machine, [a, b])
    _side_by_side(result)
    _disagreements(machine, result)
    _activate_buttons(machine, result)


def _trained_note(machine: str, done: MachineTraining) -> str:
    """What a training from this page did, in words (shown after the rerun)."""
    t = done.report.trained[0]
    scored = done.scored.scored + done.queue_scored.scored
    note = (f"Trained {name_of(t, scope=False)} for {t.scope} on {t.n_train} clips (the fit took "
            f"{duration(t.seconds)}), first threshold {number(t.threshold)} (gamma fit); then {scored} clips "
            "scored.")  # fmt: skip
    if done.active_model_id == t.model_id:
        note += f" It is now the active model of {machine}: its flags fill the triage queue."
    else:
        note += " The active model stays until you make this one active."
    return md_literal(note)


def _train(machine: str, detector: str, settings: dict[str, str]) -> None:
    """Train and score with a progress bar each; a note (or the reason it could not) afterwards."""
    training = progress_bar(f"Training {md_literal(detector)} for {md_literal(machine)}")
    scoring = progress_bar("Scoring the machine's clips")
    try:
        done = train_and_score(machine, detector, actor=current_actor(), progress=training,
                               scoring_progress=scoring, **settings)  # fmt: skip
    except MachineSoundError as exc:
        st.error(md_literal(exc.detail))
        return
    if not done.report.trained:
        reasons = "; ".join(skipped["reason"] for skipped in done.report.skipped)
        st.error(md_literal(f"{machine} was not trained: {reasons}"))
        return
    st.session_state[TRAIN_NOTE_KEY] = _trained_note(machine, done)
    st.rerun()


def _train_section(selected: str | None) -> None:
    """**Train detector**: an unsupervised detector for any machine (a new one included), then every clip scored."""
    st.subheader("Train detector")
    note = st.session_state.pop(TRAIN_NOTE_KEY, None)
    if note:
        st.success(note)
    machines = machine_keys()
    if not machines:
        st.info("No machine yet: add clips on the Data page first.")
        return
    refused = refusal(current_actor(), Action.TRAIN)  # with sign-in off, a name first: the model records its trainer
    if selected in machines and st.session_state.get(TRAIN_FOLLOWS_KEY) != selected:
        st.session_state["train_machine"] = selected  # follows the page's machine when that changes
        st.session_state[TRAIN_FOLLOWS_KEY] = selected
    left, right = st.columns(2)
    machine = left.selectbox("Machine to train", machines, key="train_machine")
    names = [AUTO, *(name for name in detector_names() if name not in CHOSEN_ONLY)]
    detector = right.selectbox("Detector", names, key="train_detector", format_func=detector_name,
                               help="The automatic choice: chosen per machine from its training clips only (see "
                               "Automatic choice); the others by name")  # fmt: skip
    settings = _settings_inputs(detector)
    st.caption("Learns the machine's normal sound from its normal training clips and the field clips the team "
               "labelled normal, then scores every clip of the machine, so the comparison and the triage queue "
               "fill. A new version of the active detector (same front end and pooling) becomes active; another "
               "detector or setting waits for **Make … active**.")  # fmt: skip
    if action_button("Train detector", refused, type="primary", key="train_button"):
        _train(machine, detector, settings)


SETTING_INPUTS = {  # train's settings beyond the detector: label, how a choice reads, help
    "front_end": ("Front end", FRONT_END_NAMES, "What the detector reads of each clip. PCEN suits machines whose "
                  "faults are in short events (a valve's clicks, a slider's strokes) under steady noise; log-mel "
                  "levels suit steady machines (fans, pumps). The automatic choice weighs both."),
    "pooling": ("Score pooling", POOLING_NAMES, "How the scores of a clip's frames become its score: a short fault "
                "stands out in the largest (max, top 10%) and drowns in the mean."),
}  # fmt: skip


def _settings_inputs(detector: str) -> dict[str, str]:
    """A select per setting the detector takes (``train --front-end --pooling``), its default first; ``{}`` for
    the automatic choice, whose candidates bring their own."""
    settings = train_settings(detector)
    columns = st.columns(2) if settings else []
    chosen = {}
    for column, (option, choices) in zip(columns, settings.items(), strict=False):
        label, names, help_text = SETTING_INPUTS[option]
        chosen[option] = column.selectbox(label, choices, key=f"train_{option}_{detector}", help=help_text,
                                          format_func=lambda c, names=names: names.get(c, c))  # fmt: skip
    return chosen


def automatic_choice_section(machine: str) -> None:
    """The automatic choice (``train --detector auto``): made from training clips only, its evidence and uncertainty."""
    st.subheader("Automatic choice (training data only)")
    choice = automatic_choice(machine)
    if choice is None:
        st.caption(f"No automatic choice for {md_literal(machine)} yet: train **auto** with **Train detector** below, "
                   "or run the command. It is made from the training clips only (held-out normal clips against "
                   "synthetic faults and other machines' clips), never the test split.")  # fmt: skip
        st.code(core_command("train", "--machine", machine, "--detector", AUTO), language="bash")
        return
    chosen = candidate_name(choice["chosen"])
    chosen += f" ({', '.join(candidate_name(m) for m in choice['members'])})" if choice["members"] else ""
    text = f"Chosen: **{md_literal(chosen)}** (model {choice['model_id']}, v{choice['version']}). "
    text += f"Why: {md_literal(choice['note'])}."
    (st.info if choice["clear"] and choice["n_clips"] >= 8 else st.warning)(text)  # a guess is a warning
    kinds = sorted({k for e in choice["evidence"].values() for k in e["by_kind"]})
    ranked = sorted(choice["evidence"].items(), key=lambda item: -item[1].get("weighted", item[1]["auc"]))
    table = pd.DataFrame(
        [{"candidate": candidate_name(label), "weighted pseudo-AUC": e.get("weighted", e["auc"]),
          "pseudo-AUC": e["auc"], "± (s.e.)": _spread(e["se"]), **{k: e["by_kind"].get(k) for k in kinds}}
         for label, e in ranked]
    )  # fmt: skip
    st.dataframe(table, hide_index=True, column_config=_evidence_columns(kinds))
    st.caption(f"{choice['n_clips']} normal training clips, {choice['folds']} cross-validation folds, "
               f"{choice['n_other_clips']} clips of other machines and {choice['n_fault_clips']} confirmed faults of "
               "this machine (abnormal clips outside the test split) as pseudo-anomalies. Pseudo-AUC: how well a "
               "candidate ranks held-out normal clips below pseudo-anomalies. The weighted one ranks the candidates: "
               f"the synthetic kinds count alike, other machines' clips weigh {OTHER_WEIGHT:.0%} when there are "
               f"some, confirmed faults {FAULT_WEIGHT:.0%} of the whole when there are some. The test split is never "
               "used.")  # fmt: skip


EVIDENCE_KINDS = {"tone": "tone", "impulses": "impulses", "band_noise": "band noise", "gain": "gain ±3 dB",
                  "other_machines": "other machines", FAULTS: "confirmed faults"}  # fmt: skip


def _spread(se: float | None) -> str:
    """A standard error as text, three decimals; blank when missing or NaN (one figure: nothing to spread), which
    a number column would show as "None"."""
    return f"{se:.3f}" if se is not None and math.isfinite(se) else ""


def _evidence_columns(kinds: list[str]) -> dict:
    """Readable headers, three decimals, and what each column of the evidence table means."""
    number = st.column_config.NumberColumn
    return {
        "weighted pseudo-AUC": number("weighted", format="%.3f", help="the weighted pseudo-AUC: what ranks the "
                                      "candidates (the weights are below)"),  # fmt: skip
        "pseudo-AUC": number(format="%.3f", help="over every pseudo-anomaly, the mean over the folds"),
        "± (s.e.)": st.column_config.TextColumn(help="standard error of the pseudo-AUC over the folds (blank: one "
                                                "figure)", alignment="right"),  # fmt: skip
    } | {kind: number(EVIDENCE_KINDS.get(kind, kind), format="%.3f", help=f"pseudo-AUC against "
                      f"{EVIDENCE_KINDS.get(kind, kind)} only") for kind in kinds}  # fmt: skip


def render() -> None:
    st.title("Compare models")
    machine = machine_picker(require_model=True, no_model_hint="No machine has a trained model yet: train one "
                             "with **Train detector** below.")  # fmt: skip
    if machine is not None:
        _comparison(machine)
        automatic_choice_section(machine)
    _train_section(machine)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
