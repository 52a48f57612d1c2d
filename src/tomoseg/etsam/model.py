"""Building the SAM2.1 video model from a config name + overrides and loading ETSAM checkpoints strictly."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tomoseg.core.io import InputError, atomic_path, write_json

log = logging.getLogger(__name__)

PAPER_CONFIG = "configs/sam2.1/sam2.1_hiera_b+.yaml"
TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
# What the published ETSAM code passes to build_sam2_video_predictor (apply_postprocessing=False), plus
# fill_hole_area=0 (the predictor's default; stated explicitly so the CUDA extension is never asked for).
BASE_OVERRIDES: tuple[str, ...] = ("++model.non_overlap_masks=false", "++model.fill_hole_area=0")
PREDICTOR_TARGET = "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"
# Random-init tuning of the test checkpoints: bias of the last layer of the object-score head, so that a
# randomly initialised model predicts "object present" on most frames instead of -1024 everywhere.
TEST_OBJECT_SCORE_BIAS = 2.0


@dataclass(frozen=True)
class ModelSpec:
    """Which SAM2 config (a name inside the sam2 package) and which Hydra overrides build the model."""

    config: str = PAPER_CONFIG
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def all_overrides(self) -> list[str]:
        """The overrides passed to Hydra: predictor class, ETSAM's settings, then the spec's own."""
        return [PREDICTOR_TARGET, *BASE_OVERRIDES, *self.overrides]


def config_name(name: str) -> str:
    """Accept 'sam2.1_hiera_b+', 'sam2.1_hiera_b+.yaml' or the full 'configs/sam2.1/...yaml' name."""
    if not name.endswith(".yaml"):
        name += ".yaml"
    if "/" not in name:
        name = f"configs/sam2.1/{name}"
    return name


# The largest image size a model is built for (SAM2 is trained at 1024): a checkpoint sidecar (data) may
# not make a job build a model of tens of GB (memory-attention position tables grow with its square).
MAX_IMAGE_SIZE = 2048


def image_size_overrides(image_size: int) -> tuple[str, ...]:
    """Hydra overrides that run a SAM2.1 config at another image size (a multiple of 32, 64..MAX_IMAGE_SIZE)."""
    if image_size % 32 or not 64 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image size must be a multiple of 32 from 64 to {MAX_IMAGE_SIZE}, got {image_size}")
    f = image_size // 16
    return (
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{f},{f}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{f},{f}]",
    )


def build_model(spec: ModelSpec, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Instantiate the SAM2 video model (random weights) from `spec`, in eval mode on `device`."""
    import sam2  # noqa: F401  (initialises Hydra's config search path)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = compose(config_name=config_name(spec.config), overrides=spec.all_overrides())
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    return model.to(device).eval()


def sidecar_path(checkpoint: str | os.PathLike) -> Path:
    """The JSON beside a checkpoint that records its model config (test checkpoints only)."""
    return Path(checkpoint).with_suffix(".json")


# The sidecar is data, never configuration: a closed set of keys with fixed types, the model config one of
# the configs shipped inside the sam2 package, and only the overrides `image_size_overrides` writes, each
# parsed into typed values and written back out by tomoseg (nothing from the file reaches Hydra verbatim,
# so no `_target_`, interpolation or other key can be smuggled in).
SIDECAR_KEYS: dict[str, tuple[type, ...]] = {
    "model_config": (str,),
    "overrides": (list,),
    "untrained": (bool,),
    "seed": (int,),
    "object_score_bias": (int, float),
}
SIDECAR_CONFIG = re.compile(r"configs/sam2(\.1)?/sam2(\.1)?_hiera_(t|s|b\+|l)\.yaml")
_SIDECAR_OVERRIDE = re.compile(r"\+\+([a-z_.]+)=(\[?[0-9]{1,5}(,[0-9]{1,5})?\]?)")
_FEAT_SIZES = (
    "model.memory_attention.layer.self_attention.feat_sizes",
    "model.memory_attention.layer.cross_attention.feat_sizes",
)


def _sidecar_override(text: Any, side: Path) -> str:
    """One sidecar override, checked against the allowed keys and value types and rebuilt from its values."""
    match = _SIDECAR_OVERRIDE.fullmatch(text) if isinstance(text, str) else None
    key, value = (match.group(1), match.group(2)) if match else ("", "")
    if key == "model.image_size" and value.isdigit():
        try:
            return image_size_overrides(int(value))[0]
        except ValueError as err:
            raise InputError(f"{side}: checkpoint sidecar override {text!r}: {err}") from None
    pair = re.fullmatch(r"\[([0-9]+),([0-9]+)\]", value)
    if key in _FEAT_SIZES and pair:
        sizes = (int(pair.group(1)), int(pair.group(2)))
        if not all(1 <= n <= MAX_IMAGE_SIZE // 16 for n in sizes):
            raise InputError(
                f"{side}: checkpoint sidecar override {text!r}: feature sizes must be 1..{MAX_IMAGE_SIZE // 16} "
                f"(image size {MAX_IMAGE_SIZE} at most)"
            )
        return f"++{key}=[{sizes[0]},{sizes[1]}]"
    allowed = ", ".join(["++model.image_size=<int>", *(f"++{k}=[<int>,<int>]" for k in _FEAT_SIZES)])
    raise InputError(
        f"{side}: checkpoint sidecar override {text!r} refused; a sidecar may only hold {allowed} "
        "(other settings go on the command line: --model-config / --model-override)"
    )


def read_sidecar(side: Path) -> tuple[ModelSpec, bool]:
    """The model spec and `untrained` flag of a checkpoint sidecar, read as data and checked key by key."""
    try:
        meta = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{side}: checkpoint sidecar is not readable JSON ({err})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{side}: checkpoint sidecar must be a JSON object, found {type(meta).__name__}")
    unknown = sorted(set(meta) - set(SIDECAR_KEYS))
    if unknown:
        raise InputError(
            f"{side}: checkpoint sidecar has unknown key(s) {unknown}; allowed: {sorted(SIDECAR_KEYS)}"
        )
    for key, kinds in SIDECAR_KEYS.items():
        value = meta.get(key)
        if key in meta and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise InputError(
                f"{side}: checkpoint sidecar key {key!r} must be {' or '.join(k.__name__ for k in kinds)}, "
                f"found {type(value).__name__}"
            )
    config = meta.get("model_config")
    if config is None or not SIDECAR_CONFIG.fullmatch(config):
        raise InputError(
            f"{side}: checkpoint sidecar model_config {config!r} refused; expected one of sam2's own "
            "configs, e.g. configs/sam2.1/sam2.1_hiera_b+.yaml"
        )
    overrides = tuple(_sidecar_override(text, side) for text in meta.get("overrides", []))
    return ModelSpec(config, overrides), bool(meta.get("untrained", False))


def checkpoint_spec(
    checkpoint: str | os.PathLike, default: ModelSpec | None = None
) -> tuple[ModelSpec, bool]:
    """The model spec and `untrained` flag recorded beside `checkpoint`, or (`default`, False) without a sidecar."""
    side = sidecar_path(checkpoint)
    if side.is_file():
        return read_sidecar(side)
    return default or ModelSpec(), False


def read_checkpoint(model: torch.nn.Module, checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict of `{'model': state_dict}` checked against `model` (keys, shapes), weights-only.

    A missing, unreadable or mismatched file is an InputError naming it; `model` is left unchanged.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(
            f"{path}: checkpoint not found. Real ETSAM weights: `tomoseg fetch-weights --out DIR` or download "
            "etsam_stage1_v1.pt / etsam_stage2_v1.pt from https://zenodo.org/records/17571925 and pass their "
            "paths; test weights: `tomoseg make-test-checkpoints --out DIR`"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a bad input file
        first = (str(err).strip().splitlines() or [""])[0]  # torch's messages run over many lines
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first})"
        ) from err
    if not isinstance(blob, dict) or not isinstance(blob.get("model"), dict):
        raise InputError(f"{path}: expected a checkpoint dict with a 'model' state_dict")
    state = blob["model"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k
        for k in set(own) & set(state)
        if not isinstance(state[k], torch.Tensor) or tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")

        raise InputError(
            f"{path}: checkpoint does not match the model config ({len(missing)} missing keys: {few(missing)}; "
            f"{len(unexpected)} unexpected keys: {few(unexpected)}; {len(mismatched)} shape mismatches: "
            f"{few(mismatched)}). Pass the right --model-config or checkpoint"
        )
    return state


def load_checkpoint(model: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    """Load `{'model': state_dict}` strictly; a missing, unreadable or mismatched file is an InputError naming it."""
    model.load_state_dict(read_checkpoint(model, checkpoint), strict=True)


def load_model(
    checkpoint: str | os.PathLike, device: str | torch.device = "cpu", default: ModelSpec | None = None
) -> tuple[torch.nn.Module, ModelSpec, bool]:
    """Build the model recorded beside `checkpoint` (or `default`) and load the checkpoint into it."""
    spec, untrained = checkpoint_spec(checkpoint, default)
    if not Path(checkpoint).is_file():
        load_checkpoint(torch.nn.Module(), checkpoint)  # raises the not-found message
    model = build_model(spec, "cpu")
    load_checkpoint(model, checkpoint)
    return model.to(device), spec, untrained


def random_model(
    spec: ModelSpec, seed: int, object_score_bias: float = TEST_OBJECT_SCORE_BIAS
) -> torch.nn.Module:
    """A randomly initialised model (seeded); the object-score head's last bias is set so objects appear."""
    torch.manual_seed(seed)
    model = build_model(spec, "cpu")
    head = model.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    with torch.no_grad():
        last.bias.fill_(object_score_bias)
    return model


def write_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, spec: ModelSpec, **sidecar: Any
) -> Path:
    """Write `{'model': state_dict}` atomically plus the sidecar JSON (config, overrides, `sidecar` keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"model": state}, tmp)
    write_json(
        sidecar_path(path),
        {"model_config": config_name(spec.config), "overrides": list(spec.overrides), **sidecar},
    )
    log.info("wrote %s", path)
    log.info("wrote %s", sidecar_path(path))
    return path


def write_untrained_checkpoint(path: str | os.PathLike, spec: ModelSpec, seed: int) -> Path:
    """Write a random model as `{'model': state_dict}` plus a sidecar JSON marking it untrained."""
    model = random_model(spec, seed)
    log.info("%s: untrained, seed %d", path, seed)
    return write_checkpoint(
        path, model, spec, untrained=True, seed=seed, object_score_bias=TEST_OBJECT_SCORE_BIAS
    )


def tiny_spec(image_size: int = 128) -> ModelSpec:
    """The tiny test model: SAM2.1 Hiera-tiny at `image_size`."""
    return ModelSpec(TINY_CONFIG, image_size_overrides(image_size))


TEST_SEEDS = {"etsam_stage1_test.pt": 0, "etsam_stage2_test.pt": 1}


def make_test_checkpoints(out: Path, image_size: int = 128) -> list[Path]:
    """Write untrained Hiera-tiny Stage 1/2 checkpoints (+ sidecar JSON with config and `untrained: true`)."""
    spec = tiny_spec(image_size)
    return [write_untrained_checkpoint(Path(out) / name, spec, seed) for name, seed in TEST_SEEDS.items()]
