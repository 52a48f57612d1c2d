"""What decides an ETSAM run (EtsamOptions) and the names of its modes; torch-free, so that the command
line can build its options without loading torch or sam2."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tomoseg.core.errors import InputError
from tomoseg.core.presets import PROMPT_ALIASES, canonical_prompt
from tomoseg.etsam.fusion import STAGE1_THRESHOLD, STAGE2_THRESHOLD

if TYPE_CHECKING:
    from tomoseg.etsam.model import ModelSpec

PROMPT_MODES: tuple[str, ...] = ("grid_first", "grid_every_n", "empty", "stage1_mask_every_n")
STAGE1_MODES: tuple[str, ...] = ("grid_first", "grid_every_n", "empty")
STAGE2_MODES: tuple[str, ...] = PROMPT_MODES
UPSTREAM_STAGE1_NAMES: tuple[str, ...] = tuple(k for k, v in PROMPT_ALIASES.items() if v in STAGE1_MODES)
UPSTREAM_STAGE2_NAMES: tuple[str, ...] = tuple(PROMPT_ALIASES)
DTYPE_NAMES: tuple[str, ...] = ("float32", "bfloat16")  # float32, or bf16 autocast (engine.DTYPES)
DTYPE_CHOICES: tuple[str, ...] = ("auto",) + DTYPE_NAMES  # auto: bf16 on CUDA (as the paper runs), else fp32
MIN_SLICE = 16  # smaller slices cannot hold a 50-px grid nor survive SAM2's 4x-downsampled decoder output
DEFAULT_WEIGHTS_DIR = Path("resources/etsam")
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")
"""The torch devices ETSAM runs on: cpu, cuda (the current GPU) or cuda:N."""


def resolve_device(device: str) -> str:
    """'auto' means the GPU when torch sees one, else the CPU; anything else is taken as given (torch is
    imported only for 'auto', so that building options stays torch-free)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' -> bfloat16 autocast on a CUDA device (the paper's setting), float32 on the CPU (where bf16
    autocast is slower and only approximates); any other value is returned as given."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device.startswith("cuda") else "float32"


@dataclass
class EtsamOptions:
    """Everything that decides an ETSAM run; the defaults are the paper's settings."""

    stage1_checkpoint: str = str(DEFAULT_WEIGHTS_DIR / "etsam_stage1_v1.pt")
    stage2_checkpoint: str = str(DEFAULT_WEIGHTS_DIR / "etsam_stage2_v1.pt")
    model_config: str | None = None  # None: the checkpoint's sidecar JSON, else SAM2.1 Hiera-B+
    model_overrides: list[str] = field(default_factory=list)
    device: str = "cpu"
    dtype: str = "auto"  # resolved on construction (resolve_dtype), so provenance records what ran
    prompt_stage1: str = "grid_first"
    prompt_stage2: str = "empty"
    every_n: int = 50
    grid_spacing: int = 50
    stage1_threshold: float = STAGE1_THRESHOLD
    threshold: float = STAGE2_THRESHOLD
    encoder_batch: int = 8
    keep_aspect: bool = False  # off = the paper (slices stretched to a square)
    bin: int = 1  # 1 = the paper; N > 1: slices block-averaged N x N before SAM2, logits upsampled back
    bidirectional: bool = False  # off = the paper (forward only); on: + backward pass from the last slice
    split: int = 1  # 1 = the paper; N > 1: N XY tiles, each through both stages (upstream: 4 quadrants)
    split_grid_spacing: int = 10  # grid dot spacing in the tiles (upstream --split-processing: 10)
    split_every_n: int = 10  # slice interval of the *_every_n modes in the tiles (upstream: 10)
    progress: bool = True
    threads: int | None = None  # torch intra-op threads; None = torch's default (every core of the machine)

    def __post_init__(self) -> None:
        self.dtype = resolve_dtype(self.dtype, self.device)
        self.prompt_stage1 = canonical_prompt(self.prompt_stage1)
        self.prompt_stage2 = canonical_prompt(self.prompt_stage2)

    def validate(self) -> None:
        """Reject unknown modes/dtypes/devices before any work is done."""
        if self.prompt_stage1 not in STAGE1_MODES:
            raise ValueError(
                f"Stage 1 prompt mode {self.prompt_stage1!r} unknown; choose one of {STAGE1_MODES}"
            )
        if self.prompt_stage2 not in STAGE2_MODES:
            raise ValueError(
                f"Stage 2 prompt mode {self.prompt_stage2!r} unknown; choose one of {STAGE2_MODES}"
            )
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype {self.dtype!r} unknown; choose one of {DTYPE_NAMES}")
        if not DEVICE.fullmatch(self.device):
            raise InputError(
                f"device {self.device!r} unknown; use cpu, cuda or cuda:N (--device, or etsam.device in the "
                "workflow config)"
            )
        if self.device.startswith("cuda"):
            self._check_cuda()
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        sizes = (self.every_n, self.grid_spacing, self.encoder_batch, self.bin)
        if min(sizes + (self.split, self.split_grid_spacing, self.split_every_n)) < 1:
            raise InputError(
                "every_n, grid_spacing, encoder_batch, bin, split, split_grid_spacing and split_every_n "
                "must be >= 1"
            )

    def prompt_spacing(self) -> tuple[int, int]:
        """(every_n, grid_spacing) of the prompts: the split ones when the volume is split into tiles."""
        if self.split > 1:
            return self.split_every_n, self.split_grid_spacing
        return self.every_n, self.grid_spacing

    def _check_cuda(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                f"device {self.device!r} requested but this torch ({torch.__version__}) has no CUDA device; "
                "use --device cpu (or etsam.device: cpu in the workflow config)"
            )
        index = int(self.device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise InputError(
                f"device {self.device!r} requested but torch sees {torch.cuda.device_count()} GPU(s) "
                "(cuda:0 ...); pick one of them or cpu"
            )

    def spec_for(self, checkpoint: str) -> tuple[ModelSpec, bool]:
        """The model spec for `checkpoint` (explicit config wins over its sidecar) and its untrained flag."""
        from tomoseg.etsam.model import ModelSpec, checkpoint_spec, config_name

        spec, untrained = checkpoint_spec(checkpoint)
        if self.model_config:
            spec = ModelSpec(config_name(self.model_config), tuple(self.model_overrides))
        return spec, untrained
