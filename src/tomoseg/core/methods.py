"""The method registry: every segmentation method's name, output files, score kind, colour and label.

One place for what the workflow rules, the nightly batch, the tables and the figures need to know about
a method. A method's files live under `results/{folder}/{tomo}/`; `scores` is None for a mask-only
method (scored without a histogram or AUPRC). Adding a method means adding an entry here and the rule
that writes its files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What the rest of tomoseg knows about one method."""

    name: str
    title: str
    folder: str
    mask: str
    scores: str | None
    score_kind: str | None
    provenance: str
    colour: str
    baseline: bool = False
    paper_file: str | None = None  # stem of the paper's per-tomogram CSV (src/tomoseg/data/paper/)
    gpu_rules: tuple[
        str, ...
    ] = ()  # the GPU rules whose jobs make the method's files (their cost is its cost)
    cpu_rules: tuple[str, ...] = ()  # CPU rules also counted in its runtime and memory (e.g. postprocess)
    compare_with: str | None = None  # a variant's reference method in the variants table (what it changes)

    def path(self, file: str, tomo: str = "{tomo}") -> str:
        """`results/{folder}/{tomo}/{file}` (a template with {tomo} unless `tomo` is given)."""
        return f"results/{self.folder}/{tomo}/{file}"

    def mask_path(self, tomo: str = "{tomo}") -> str:
        """The method's binary mask."""
        return self.path(self.mask, tomo)

    def scores_path(self, tomo: str = "{tomo}") -> str | None:
        """The method's per-voxel scores (logits or probabilities), None for a mask-only method."""
        return self.path(self.scores, tomo) if self.scores else None

    def provenance_path(self, tomo: str = "{tomo}") -> str:
        """The provenance record that says, among other things, whether the output is untrained."""
        return self.path(self.provenance, tomo)


# Okabe-Ito colour-blind-safe palette (the upstream variants: Paul Tol's): one fixed colour per method.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "etsam",
            "ETSAM (two-stage)",
            "etsam",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#0072B2",
            paper_file="etsam",
            gpu_rules=("etsam_stage1", "etsam_stage2"),
        ),
        Method(
            "etsam_stage1",
            "ETSAM Stage 1 only",
            "etsam",
            "stage1_mask.mrc",
            "stage1_logits.mrc",
            "etsam-logits",
            "stage1_provenance.json",
            "#56B4E9",
            gpu_rules=("etsam_stage1",),
        ),
        Method(
            "etsam_postprocessed",
            "ETSAM, post-processed",
            "etsam",
            "mask_postprocessed.mrc",
            None,
            None,
            "provenance.json",
            "#009E73",
            gpu_rules=("etsam_stage1", "etsam_stage2"),
            cpu_rules=("postprocess",),
        ),
        Method(
            "membrain",
            "Membrain-Seg",
            "membrain",
            "mask.mrc",
            "scores.mrc",
            "logits",
            "provenance.json",
            "#E69F00",
            baseline=True,
            paper_file="membrain_seg",
            gpu_rules=("membrain",),
        ),
        Method(
            "tardis",
            "TARDIS",
            "tardis",
            "mask.mrc",
            "probabilities.mrc",
            "probabilities",
            "provenance.json",
            "#D55E00",
            baseline=True,
            paper_file="tardis",
            gpu_rules=("tardis",),
        ),
        # upstream ETSAM variants (tomoseg.core.presets.VARIANTS): its current defaults, one option each
        Method(
            "etsam_upstream",
            "ETSAM, upstream defaults",
            "etsam_upstream",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#332288",
            compare_with="etsam",
            gpu_rules=("etsam_variant_stage1", "etsam_variant_stage2"),
        ),
        Method(
            "etsam_upstream_postprocessed",
            "ETSAM, upstream defaults, upstream post-processing",
            "etsam_upstream",
            "mask_postprocessed.mrc",
            None,
            None,
            "provenance.json",
            "#117733",
            compare_with="etsam_upstream",
            gpu_rules=("etsam_variant_stage1", "etsam_variant_stage2"),
        ),
        Method(
            "etsam_upstream_softplus",
            "ETSAM, upstream, softplus_minmax normalization",
            "etsam_upstream_softplus",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#44AA99",
            compare_with="etsam_upstream",
            gpu_rules=("etsam_variant_stage1", "etsam_variant_stage2"),
        ),
        Method(
            "etsam_upstream_stage1_partial",
            "ETSAM, upstream, Stage 2 prompted with the Stage 1 mask",
            "etsam_upstream_stage1_partial",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#882255",
            compare_with="etsam_upstream",
            gpu_rules=("etsam_variant_stage1", "etsam_variant_stage2"),
        ),
        Method(
            "etsam_upstream_split",
            "ETSAM, upstream, split processing",
            "etsam_upstream_split",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#AA4499",
            compare_with="etsam_upstream",
            gpu_rules=("etsam_variant_stage1", "etsam_variant_stage2"),
        ),
        # ETSAM trained here (workflow/rules/training.smk, docs/training.md); labelled with what it learned from
        Method(
            "etsam_trained",
            "ETSAM, trained here",
            "etsam_trained",
            "mask.mrc",
            "stage2_logits.mrc",
            "etsam-logits",
            "provenance.json",
            "#DDCC77",
            compare_with="etsam",
            # per-tomogram inference cost, as for etsam; the one-off training job is not per tomogram
            gpu_rules=("etsam_trained_stage1", "etsam_trained_stage2"),
        ),
    )
}
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
"""Method names used in paths, tables and figures (the config schema's `methods` enum must match)."""
PAPER_METHODS: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.paper_file)
"""The three methods of the paper's Table 1 and paired tests."""
BASELINES: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.baseline)
EXTRA_COLOURS = ("#CC79A7", "#F0E442", "#000000", "#999999")
UNTRAINED_MARK = " (untrained)"


def method(name: str) -> Method:
    """The registry entry of `name`; a KeyError lists the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(METHOD_NAMES)})") from None


def label(name: str, untrained: Iterable[str] | Mapping[str, str] = ()) -> str:
    """Display name of a method in tables and figures, marked when it came from untrained weights; given a
    mapping (`method_marks`), marked with what the mapping says (untrained, or what it was trained on)."""
    if isinstance(untrained, Mapping):
        return name + untrained.get(name, "")
    return name + (UNTRAINED_MARK if name in set(untrained) else "")


def unlabel(shown: str, marks: Mapping[str, str]) -> str:
    """The method name behind a display name that `label(name, marks)` made (unmarked names pass through)."""
    return next((name for name, mark in marks.items() if shown == name + mark), shown)


def method_marks(untrained: Iterable[str], trained_on: Mapping[str, str | None]) -> dict[str, str]:
    """The display marks of `label`: " (untrained)", or " (trained on ...)" for a model trained here."""
    marks = {m: f" (trained on {what})" for m, what in trained_on.items() if what}
    marks.update({m: UNTRAINED_MARK for m in untrained})
    return marks


def colour(name: str, order: Iterable[str] = ()) -> str:
    """A method's fixed colour; methods outside the registry (ablation variants) share the spare colours."""
    if name in METHODS:
        return METHODS[name].colour
    others = [m for m in order if m not in METHODS]
    return EXTRA_COLOURS[others.index(name) % len(EXTRA_COLOURS)] if name in others else "#999999"
