"""Named ETSAM settings (presets), upstream ETSAM's names for our options, and the upstream method variants.

Data and plain dict arithmetic only, so that the CLI, the workflow (at parse time) and the stages read
the same values. Two presets:

- `paper`: the published code of the paper (ETSAM commit fc1864e); tomoseg's default.
- `upstream`: what the current ETSAM code (github.com/jianlin-cheng/ETSAM, commit 58e8df8,
  `etsam.py` and `postprocess.py`) does with its defaults. It differs from `paper` in the Stage 1
  threshold (-0.25; it only feeds the `stage1_mask_every_n` prompts and tomoseg's `stage1_mask.mrc`) and
  in post-processing (upstream's `--post-process` runs both steps: thin-noise removal, then rung cutting).
  Upstream's other options (softplus normalization, the Stage 1 mask prompt for Stage 2, split
  processing) are off by default at that commit; they are the method variants below.

A setting given explicitly (not None) always wins over the preset (`resolve`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PAPER_COMMIT = "fc1864e"
UPSTREAM_COMMIT = "58e8df8"
PRESET_NAMES: tuple[str, ...] = ("paper", "upstream")

# upstream ETSAM's names -> ours (accepted wherever ours are)
PROMPT_ALIASES: dict[str, str] = {
    "grid_zero": "grid_first",
    "grid": "grid_every_n",
    "zero": "empty",
    "etsam_stage1_partial": "stage1_mask_every_n",
}
NORMALIZATION_ALIASES: dict[str, str] = {"min_max_positive_values": "max_positive"}
POSTPROCESS_STEPS: tuple[str, ...] = ("thin_noise", "rungs")
POSTPROCESS_ALIASES: dict[str, str] = {
    "remove_thin_noise": "thin_noise",
    "remove_parallel_membrane_misconnections": "rungs",
}

# The engine options every preset decides, shared by both presets except Stage 1's threshold (which sits
# between them: the dicts' order is the order of ETSAM_PRESET_KEYS, hence of the workflow's params).
_PROMPTS = {"prompt_stage1": "grid_first", "prompt_stage2": "empty", "every_n": 50, "grid_spacing": 50}
_THRESHOLD_AND_SPLIT = {"threshold": -0.25, "split": 1, "split_grid_spacing": 10, "split_every_n": 10}
_COMMON_POSTPROCESS = {"min_slices": 10, "max_bridge_len": 5, "max_spur_len": 0}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "normalization": "max_positive",
        "etsam": {**_PROMPTS, "stage1_threshold": 0.0, **_THRESHOLD_AND_SPLIT},
        "postprocess": {**_COMMON_POSTPROCESS, "steps": ["thin_noise"]},
    },
    "upstream": {
        "normalization": "max_positive",
        "etsam": {**_PROMPTS, "stage1_threshold": -0.25, **_THRESHOLD_AND_SPLIT},
        "postprocess": {**_COMMON_POSTPROCESS, "steps": ["thin_noise", "rungs"]},
    },
}
"""Every setting a preset decides: `normalization`, `etsam` (engine options), `postprocess`."""

ETSAM_PRESET_KEYS: tuple[str, ...] = tuple(PRESETS["paper"]["etsam"])
"""The engine options a preset decides, in the order the CLI and the workflow's params list them."""


def canonical_prompt(mode: str) -> str:
    """Our name of a prompt mode (upstream's `grid_zero`, `grid`, `zero`, `etsam_stage1_partial` mapped)."""
    return PROMPT_ALIASES.get(mode, mode)


def canonical_normalization(mode: str) -> str:
    """Our name of a normalization (upstream's `min_max_positive_values` = `max_positive`)."""
    return NORMALIZATION_ALIASES.get(mode, mode)


def canonical_steps(steps: str | list[str] | tuple[str, ...]) -> list[str]:
    """Post-processing steps in their fixed order (thin_noise, then rungs), from a list or 'a,b'; checked."""
    items = steps.split(",") if isinstance(steps, str) else list(steps)
    names = {POSTPROCESS_ALIASES.get(s.strip(), s.strip()) for s in items if s.strip()}
    unknown = sorted(names - set(POSTPROCESS_STEPS))
    if unknown:
        raise ValueError(f"unknown post-processing step(s) {unknown}; choose from {POSTPROCESS_STEPS}")
    return [s for s in POSTPROCESS_STEPS if s in names]


def resolve(preset: str = "paper", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of `preset` with every non-None value of `overrides` (nested like PRESETS) put over them.

    Keys the preset does not decide (e.g. `etsam.device`) pass through; names are made canonical.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESET_NAMES}")
    out = copy.deepcopy(PRESETS[preset])
    for key, value in (overrides or {}).items():
        if isinstance(out.get(key), dict):
            out[key].update({k: v for k, v in (value or {}).items() if v is not None})
        elif value is not None:
            out[key] = value
    out["normalization"] = canonical_normalization(out["normalization"])
    for stage in ("prompt_stage1", "prompt_stage2"):
        out["etsam"][stage] = canonical_prompt(out["etsam"][stage])
    out["postprocess"]["steps"] = canonical_steps(out["postprocess"]["steps"])
    return out


@dataclass(frozen=True)
class Variant:
    """A method variant: upstream ETSAM's defaults (a preset) with one upstream option switched on."""

    name: str
    preset: str
    upstream_command: str  # the equivalent upstream command line
    changes: Mapping[str, Any] = field(default_factory=dict)  # nested like PRESETS, over the preset
    base: str | None = None  # post-processed variants: the variant whose mask is post-processed

    @property
    def run(self) -> str:
        """The variant whose ETSAM run this method reads (itself, or its base)."""
        return self.base or self.name

    def settings(self) -> dict[str, Any]:
        """The resolved settings of the variant's run (preset + changes)."""
        return resolve(self.preset, self.changes)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("etsam_upstream", "upstream", "python etsam.py TOMO.mrc"),
        Variant(
            "etsam_upstream_postprocessed",
            "upstream",
            "python etsam.py TOMO.mrc --post-process",
            base="etsam_upstream",
        ),
        Variant(
            "etsam_upstream_softplus",
            "upstream",
            "python etsam.py TOMO.mrc --normalize-method softplus_minmax",
            {"normalization": "softplus_minmax"},
        ),
        Variant(
            "etsam_upstream_stage1_partial",
            "upstream",
            "python etsam.py TOMO.mrc --stage2-prompt etsam_stage1_partial",
            {"etsam": {"prompt_stage2": "stage1_mask_every_n"}},
        ),
        Variant(
            "etsam_upstream_split",
            "upstream",
            "python etsam.py TOMO.mrc --split-processing",
            {"etsam": {"split": 4}},
        ),
    )
}
"""Upstream ETSAM variants the workflow can run and score as methods (names in tomoseg.core.methods)."""
