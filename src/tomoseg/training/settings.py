"""What decides a training run (TrainSettings) and its presets: `paper` (the authors' setting) and `demo`
(a small setting that trains on phantoms on a 2-core CPU). Torch-free, so the CLI builds it cheaply."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tomoseg.core.errors import InputError

PAPER_MODEL = "configs/sam2.1/sam2.1_hiera_b+.yaml"
TINY_MODEL = "configs/sam2.1/sam2.1_hiera_t.yaml"


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of a training run; the defaults are the paper's (notes/etsam-training.md)."""

    model_config: str = PAPER_MODEL
    image_size: int = 1024
    frames: int = 22  # consecutive slices in one sample
    batch_size: int = 1  # samples per optimizer step
    epochs_stage1: int = 602
    epochs_stage2: int = 545
    repeats: int = 1  # samples drawn per training tomogram and epoch
    lr: float = 5e-6  # everything but the image encoder
    lr_encoder: float = 3e-6  # the image encoder (trunk scaled by layer decay)
    lr_final_ratio: float = 0.1  # cosine decay to this fraction of each lr
    warmup_steps: int = 0
    weight_decay: float = 0.1  # 0 for biases and norm weights
    layer_decay: float = 0.9  # per trunk block, from the last block down
    clip_norm: float = 0.1
    drop_path: float = 0.1  # stochastic depth in the trunk (training only)
    bf16: bool = True  # bf16 autocast on CUDA (CPU trains in float32)
    # prompts on the conditioning frames: points, else box, else the mask
    prob_points: float = 0.5
    prob_box: float = 0.5  # of the non-point prompts
    max_cond_frames: int = 2  # 1..max initial conditioning frames (frame 0 always)
    # not in the paper (0 there): the probability that frame 0 gets inference's prompt instead (Stage 1 the
    # grid of dots, Stage 2 the empty mask) and is the only conditioning frame
    prob_inference_prompt: float = 0.0
    grid_spacing: int = 50  # px between the grid's dots (inference's Stage 1 prompt), for the above
    correction_frames: int = 2  # frames that get iterative correction clicks (1..this)
    correction_clicks: int = 7
    prob_click_from_truth: float = 0.1
    # loss weights
    weight_focal: float = 20.0
    weight_dice: float = 1.0
    weight_iou: float = 1.0
    weight_object: float = 1.0
    focal_alpha: float = 0.25  # < 0: no class weight
    # not in the paper (False there, as in SAM2: only the best-fitting multimask output gets focal and dice):
    # every candidate mask gets them, so the one inference picks by predicted IoU is a trained one
    supervise_all_masks: bool = False
    focal_gamma: float = 2.0
    # not in the paper (False there: both stages start from --init, SAM2.1's weights): Stage 2 starts from the
    # trained Stage 1, the nearest thing to a pretrained start when there are no pretrained weights
    stage2_from_stage1: bool = False
    # augmentation: one transform for all frames of a sample, image and label alike
    prob_flip: float = 0.5
    rotation_deg: float = 25.0
    shear_deg: float = 20.0
    brightness: float = 0.1
    contrast: float = 0.03
    saturation: float = 0.03  # no effect on grey frames (three equal channels)
    prob_grayscale: float = 0.05  # no effect on grey frames
    normalization: str = "max_positive"
    checkpoint_every: int = 100  # optimizer steps between resume checkpoints
    val_every: int = 1  # epochs between validation runs
    seed: int = 0

    def validate(self) -> None:
        """Refuse settings no run could use, naming the setting."""
        positive = ("image_size", "frames", "batch_size", "repeats", "checkpoint_every", "val_every")
        positive += ("epochs_stage1", "epochs_stage2")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"training setting {name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % 32 or self.image_size < 64:
            raise InputError(
                f"training setting image_size must be a multiple of 32 and >= 64, got {self.image_size}"
            )
        for name in ("warmup_steps", "correction_clicks"):
            if getattr(self, name) < 0:
                raise InputError(f"training setting {name} must be >= 0, got {getattr(self, name)}")
        probabilities = (
            "prob_points",
            "prob_box",
            "prob_flip",
            "prob_click_from_truth",
            "prob_inference_prompt",
        )
        for name in (*probabilities, "lr_final_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"training setting {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_cond_frames < 1 or self.max_cond_frames > self.frames:
            raise InputError(
                f"training setting max_cond_frames must lie in 1..frames, got {self.max_cond_frames}"
            )

    def epochs(self, stage: int) -> int:
        """The number of epochs of Stage `stage`."""
        return self.epochs_stage1 if stage == 1 else self.epochs_stage2

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (provenance, checkpoints)."""
        return asdict(self)

    def fingerprint(self) -> str:
        """A digest of every setting: a resumed run must have been started with the same ones."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, TrainSettings] = {
    "paper": TrainSettings(),
    # Hiera-tiny at 128 px, 3-slice samples, from random weights: fits 2 CPU cores in minutes. Deviations from
    # the paper, each because the demo starts from random weights and has minutes (docs/training.md): far
    # larger learning rates and no layer decay; frame 0 always gets inference's own prompt (so no point, box or
    # mask prompts and no correction clicks: the demo only ever segments with inference's prompts); every
    # candidate mask is supervised (an IoU head that has not learned yet makes inference pick an untrained
    # one); focal loss without the class weight alpha and dice x5 (with alpha 0.25 and dice x1 the logits
    # stay below 0 for a long time); Stage 2 starts from the trained Stage 1.
    "demo": TrainSettings(
        model_config=TINY_MODEL,
        image_size=128,
        # 3-slice samples, each volume visited 8 times an epoch: the same slices a step as 6-slice samples
        # visited 4 times, but twice the independent samples (consecutive slices are near-copies); held-out
        # Stage 1 Dice 0.655 against 0.604 at equal compute (docs/training.md)
        frames=3,
        batch_size=1,
        epochs_stage1=20,
        epochs_stage2=5,
        repeats=8,
        lr=3e-4,
        lr_encoder=3e-4,
        warmup_steps=10,
        weight_decay=0.01,
        layer_decay=1.0,
        clip_norm=1.0,
        drop_path=0.0,
        correction_frames=1,
        correction_clicks=1,
        prob_inference_prompt=1.0,
        supervise_all_masks=True,
        focal_alpha=-1.0,
        weight_dice=5.0,
        stage2_from_stage1=True,
        checkpoint_every=50,  # ~35 s of training; each resume state is 0.47 GB written (~1.5 s)
        val_every=5,
    ),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def preset(name: str, **overrides: Any) -> TrainSettings:
    """The settings of preset `name` with `overrides` (None values ignored), validated."""
    if name not in PRESETS:
        raise InputError(f"training preset {name!r} unknown; choose one of {PRESET_NAMES}")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown training setting(s) {unknown}")
    settings = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    settings.validate()
    return settings
