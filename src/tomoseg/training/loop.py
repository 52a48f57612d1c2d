"""The training loop of one stage: SAM2's video forward over each sample's frames (conditioning frames with
prompts first, then every other frame with memory), the loss, AdamW steps, atomic resume checkpoints.

The forward calls the `sam2` model's own modules (forward_image, _prepare_backbone_features, _track_step,
_encode_memory_in_output) in the order SAM2's video model runs them; the sam2 wheel has no training code.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tomoseg.core.io import InputError, atomic_path
from tomoseg.etsam.prompts import build_prompts, resize_mask_prompt
from tomoseg.training.augment import apply_transform, draw_transform
from tomoseg.training.data import SliceDataset
from tomoseg.training.loss import LOSS_NAMES, frame_loss
from tomoseg.training.optim import build_optimizer
from tomoseg.training.prompts import Prompt, correction_click, sample_prompt

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class StageLog:
    """What a stage's training did: per-step losses, validation Dice per epoch, samples and time."""

    losses: list[dict[str, float]] = field(default_factory=list)
    val_dice: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_second(self) -> float:
        """Training throughput (samples/s) over the time this process trained."""
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _frame_features(model: torch.nn.Module, frames: torch.Tensor) -> list[tuple]:
    """Per frame: SAM2's prepared (vision_feats, vision_pos, feat_sizes) with batch 1."""
    backbone = model.forward_image(frames)
    _, feats, pos, sizes = model._prepare_backbone_features(backbone)
    return [
        ([x[:, t : t + 1] for x in feats], [x[:, t : t + 1] for x in pos], sizes) for t in range(len(frames))
    ]


def plan_prompts(
    labels: np.ndarray, rng: np.random.Generator, settings, inference_prompt: np.ndarray | None = None
) -> tuple[dict[int, Prompt], list[int]]:
    """Conditioning frames with their prompts (frame 0 always, up to max_cond_frames), and the frames of
    those that get correction clicks (point and box prompts only; a mask prompt is output as it is).

    With probability `prob_inference_prompt`, frame 0 alone is prompted with `inference_prompt` (the S x S
    mask inference gives frame 0) instead.
    """
    n = len(labels)
    if inference_prompt is not None and rng.random() < settings.prob_inference_prompt:
        return {0: Prompt("mask", mask=np.asarray(inference_prompt, bool))}, []
    count = int(rng.integers(1, settings.max_cond_frames + 1))
    others = rng.permutation(np.arange(1, n))[: count - 1] if n > 1 else []
    cond = [0, *sorted(int(f) for f in others)]
    prompts = {f: sample_prompt(labels[f], rng, settings.prob_points, settings.prob_box) for f in cond}
    clickable = [f for f in cond if prompts[f].kind != "mask"]
    corrected: list[int] = []
    if settings.correction_clicks and settings.correction_frames and clickable:
        k = int(rng.integers(1, min(settings.correction_frames, len(clickable)) + 1))
        corrected = sorted(int(f) for f in rng.permutation(clickable)[:k])
    return prompts, corrected


def forward_sample(
    model: torch.nn.Module,
    frames: torch.Tensor,
    labels: torch.Tensor,
    prompts: dict[int, Prompt],
    corrected: list[int],
    rng: np.random.Generator,
    settings,
) -> dict[str, torch.Tensor]:
    """Mean loss terms over the frames of one sample (frames (N, 3, S, S), labels (N, S, S) 0/1)."""
    n, device = len(frames), frames.device
    feats = _frame_features(model, frames)
    state: dict[str, dict] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    truth = labels.detach().cpu().numpy() > 0.5
    totals: dict[str, torch.Tensor] = {}
    steps = 0
    order = sorted(prompts) + [t for t in range(n) if t not in prompts]
    for t in order:
        vf, vp, fs = feats[t]
        prompt = prompts.get(t)
        point_inputs = prompt.point_inputs(device) if prompt else None
        mask_inputs = prompt.mask_inputs(device) if prompt else None
        target = labels[t][None, None]
        prev_logits = None
        clicks = settings.correction_clicks if t in corrected else 0
        for click in range(clicks + 1):
            out, sam, _, _ = model._track_step(
                t, t in prompts, vf, vp, fs, point_inputs, mask_inputs, state, n, False, prev_logits
            )
            multimasks, ious = sam[1], sam[2]
            terms = frame_loss(multimasks, ious, sam[6], target, settings)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0) + value
            steps += 1
            if click == clicks:
                break
            # a correction click from the error region of this prediction, fed with the prediction's logits
            pred = (sam[4][0, 0] > 0).detach().cpu().numpy()
            x, y, label = correction_click(pred, truth[t], rng, settings.prob_click_from_truth)
            coords = torch.tensor([[[x, y]]], dtype=torch.float32, device=device)
            labels_t = torch.tensor([[label]], dtype=torch.int32, device=device)
            if point_inputs is None:
                point_inputs = {"point_coords": coords, "point_labels": labels_t}
            else:
                point_inputs = {
                    "point_coords": torch.cat([point_inputs["point_coords"], coords], 1),
                    "point_labels": torch.cat([point_inputs["point_labels"], labels_t], 1),
                }
            prev_logits = sam[3]
        _, _, _, low, high, obj_ptr, obj_score = sam
        out["pred_masks"], out["pred_masks_high_res"], out["obj_ptr"] = low, high, obj_ptr
        out["object_score_logits"] = obj_score
        model._encode_memory_in_output(vf, fs, point_inputs, True, high, obj_score, out)
        state["cond_frame_outputs" if t in prompts else "non_cond_frame_outputs"][t] = out
    return {k: v / steps for k, v in totals.items()}


def rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) random state, saved in resume checkpoints."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `rng_state()`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_batch_split(batch_size: int, processes: int) -> None:
    """A step's samples must split evenly over the training processes (InputError naming both otherwise)."""
    if batch_size % processes:
        raise InputError(
            f"batch size {batch_size} is not a multiple of the {processes} training processes "
            "(--batch-size: samples per optimizer step over all processes)"
        )


def world_rank() -> tuple[int, int]:
    """(number of processes, this process's rank) of torch.distributed, (1, 0) without it."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _all_reduce_gradients(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over the processes; a parameter no process used keeps no gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    torch.distributed.all_reduce(used)
    for p, n in zip(params, used.tolist(), strict=True):
        if n == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)


class StageTrainer:
    """Trains one stage's model on a SliceDataset; `state_path` holds the resume checkpoint."""

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: SliceDataset,
        settings,
        stage: int,
        state_path: Path,
        device: str = "cpu",
        progress: bool = True,
        validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        fingerprint: str = "",
    ):
        self.model, self.dataset, self.settings, self.stage = model, dataset, settings, stage
        self.state_path, self.device = Path(state_path), torch.device(device)
        self.progress, self.validate, self.fingerprint = progress, validate, fingerprint
        self.steps_per_epoch = math.ceil(dataset.per_epoch / settings.batch_size)
        self.total_steps = self.steps_per_epoch * settings.epochs(stage)
        self.model.to(self.device)
        self.optimizer, self.scheduler = build_optimizer(self.model, settings, self.total_steps)
        self.step, self.log = 0, StageLog()

    # -- checkpoints ---------------------------------------------------------------------------------
    def save_state(self) -> None:
        """Write the resume checkpoint atomically: model, optimizer, scheduler, RNG, data position, logs."""
        state = {
            "version": STATE_VERSION,
            "stage": self.stage,
            "fingerprint": self.fingerprint,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "losses": self.log.losses,
            "val_dice": self.log.val_dice,
            "samples": self.log.samples,
            "seconds": self.log.seconds,
        }
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)
        log.debug("stage %d: resume checkpoint at step %d -> %s", self.stage, self.step, self.state_path)

    def load_state(self) -> bool:
        """Resume from `state_path` when it exists (same settings and inputs only); True if resumed."""
        if not self.state_path.is_file():
            return False
        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - a damaged resume file is a bad input
            raise InputError(
                f"{self.state_path}: resume checkpoint not readable ({type(err).__name__}: {err}); remove it to start over"
            ) from None
        if state.get("fingerprint") != self.fingerprint or state.get("stage") != self.stage:
            raise InputError(
                f"{self.state_path}: resume checkpoint of other settings or inputs; use another --out or remove it"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.log = StageLog(state["losses"], state["val_dice"], state["samples"], state["seconds"])
        log.info(
            "stage %d: resumed at step %d of %d from %s",
            self.stage,
            self.step,
            self.total_steps,
            self.state_path,
        )
        return True

    # -- one step ------------------------------------------------------------------------------------
    def inference_prompt(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The S x S mask inference prompts frame 0 with (paper: Stage 1 grid dots, Stage 2 empty)."""
        if not self.settings.prob_inference_prompt:
            return None
        s = self.model.image_size
        if self.stage == 2:
            return np.zeros((s, s), bool)
        grid = build_prompts("grid_first", (1, *shape[1:]), s, grid_spacing=self.settings.grid_spacing)[0]
        return resize_mask_prompt(grid, s)[0, 0].numpy() > 0.5

    def _sample_loss(self, s: int) -> dict[str, torch.Tensor]:
        images, labels, _, _ = self.dataset.sample(s)
        rng = np.random.default_rng([self.settings.seed, self.stage, s])
        transform = draw_transform(rng, self.settings)
        frames, truth = apply_transform(
            torch.from_numpy(images).to(self.device),
            torch.from_numpy(labels),
            transform,
            self.model.image_size,
        )
        prompts, corrected = plan_prompts(
            truth.cpu().numpy() > 0.5, rng, self.settings, self.inference_prompt(images.shape)
        )
        with _autocast(self.device, self.settings.bf16):
            return forward_sample(
                self.model, frames, truth.to(self.device), prompts, corrected, rng, self.settings
            )

    def train_step(self) -> dict[str, float]:
        """One optimizer step over `batch_size` samples (gradients accumulated); returns the mean terms.

        Under torch.distributed (DDP through torchrun, any backend) each of the W processes takes
        batch_size / W of the step's samples and the gradients are summed over processes before clipping,
        so W processes take the same step as one process on the whole batch.
        """
        b = self.settings.batch_size
        world, rank = world_rank()
        check_batch_split(b, world)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros(len(LOSS_NAMES) + 1, dtype=torch.float64)
        for i in range(rank * (b // world), (rank + 1) * (b // world)):
            s = self.step * b + i
            torch.manual_seed(self.settings.seed * 1_000_003 + self.stage * 7919 + s)  # dropout, drop-path
            terms = self._sample_loss(s)
            (terms["total"] / b).backward()
            sums += torch.tensor(
                [float(terms[k].detach()) / b for k in (*LOSS_NAMES, "total")], dtype=torch.float64
            )
        if world > 1:
            _all_reduce_gradients(self.model)
            torch.distributed.all_reduce(sums)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return dict(zip((*LOSS_NAMES, "total"), sums.tolist(), strict=True))

    # -- the run -------------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> StageLog:
        """Train to the last step (or `stop_after` steps in this call), checkpointing and validating on the way."""
        self.load_state()
        _, rank = world_rank()  # under DDP, process 0 alone validates and writes checkpoints
        end = self.total_steps if stop_after is None else min(self.total_steps, self.step + stop_after)
        bar = tqdm(
            total=self.total_steps, initial=self.step, desc=f"train stage {self.stage}", unit="step",
            disable=not self.progress or rank > 0,
        )  # fmt: skip
        while self.step < end:
            t0 = time.perf_counter()
            terms = self.train_step()
            self.log.seconds += time.perf_counter() - t0
            self.log.samples += self.settings.batch_size
            self.log.losses.append({"step": self.step, **{k: round(v, 6) for k, v in terms.items()}})
            bar.update(1)
            bar.set_postfix(loss=f"{terms['total']:.4f}", rate=f"{self.log.samples_per_second:.2f} samples/s")
            epoch_done = self.step % self.steps_per_epoch == 0
            epoch = self.step // self.steps_per_epoch
            validated = (
                rank == 0
                and epoch_done
                and self.validate is not None
                and (epoch % self.settings.val_every == 0 or self.step == self.total_steps)
            )
            if validated:
                self.model.eval()
                scores = self.validate(self.model)
                self.log.val_dice.append({"epoch": epoch, "step": self.step, **scores})
                log.info("stage %d epoch %d: validation Dice %s", self.stage, epoch, scores)
            # not at every epoch end: a resume state is the size of the model and its optimizer (0.47 GB for
            # Hiera-tiny), and the data position is the step, so any step resumes; after a validation, so
            # that no validation is lost
            if rank == 0 and (
                self.step % self.settings.checkpoint_every == 0 or self.step == end or validated
            ):
                self.save_state()
        bar.close()
        self.model.eval()
        return self.log
