"""Both ETSAM stages on one normalized tomogram, one model build per model config, and the file-level steps."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tomoseg.core.errors import OutputError
from tomoseg.core.io import (
    InputError,
    read_header,
    read_placement,
    read_volume,
    require_space,
    require_writable_dir,
    sha256sum,
    write_error,
    write_json,
    write_volume,
)
from tomoseg.core.io import check_outputs as check_replaceable_outputs
from tomoseg.core.provenance import provenance_record, untrained_flag
from tomoseg.etsam.engine import PropagationStats, fuse_passes, propagate_tiles
from tomoseg.etsam.fusion import FusedVolume, threshold
from tomoseg.etsam.model import ModelSpec, build_model, load_checkpoint, read_checkpoint
from tomoseg.etsam.options import MIN_SLICE, EtsamOptions
from tomoseg.etsam.prompts import build_prompts
from tomoseg.etsam.tiles import tile_boxes
from tomoseg.preprocess import normalize_volume

log = logging.getLogger(__name__)


@dataclass
class EtsamResult:
    """Logits of the stages that ran, with their timing and whether the weights were untrained."""

    stage1_logits: np.ndarray | None = None
    stage2_logits: np.ndarray | None = None
    stats: dict[str, PropagationStats] = field(default_factory=dict)
    untrained: bool = False
    checkpoints: dict[str, str] = field(default_factory=dict)
    checkpoint_sha256: dict[str, str] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)


def check_volume(volume: np.ndarray, name: str = "volume") -> None:
    """A usable ETSAM input: 3-D, slices at least MIN_SLICE px, finite values."""
    if volume.ndim != 3:
        raise InputError(f"{name}: expected a 3-D tomogram (Z, Y, X), found shape {volume.shape}")
    if volume.shape[0] < 1 or min(volume.shape[1:]) < MIN_SLICE:
        raise InputError(
            f"{name}: slices of {volume.shape[1]}x{volume.shape[2]} px are too small "
            f"(ETSAM needs at least {MIN_SLICE}x{MIN_SLICE})"
        )
    if not np.isfinite(volume).all():
        raise InputError(f"{name}: non-finite values (NaN or inf)")


class ModelCache:
    """Each model config built once and each checkpoint read, loaded and hashed once per process.

    `tomoseg segment A B ...` segments many tomograms with one cache: the models are not rebuilt and the
    checkpoints not re-read per tomogram (the published code rebuilds the model per stage). Two checkpoints of
    one config get two model instances (the second a copy of the built one), so switching stages loads nothing.
    """

    def __init__(self, opts: EtsamOptions):
        self.opts = opts
        self.built: dict[ModelSpec, torch.nn.Module] = {}
        self.loaded: dict[str, tuple[torch.nn.Module, ModelSpec, bool]] = {}
        self.digests: dict[str, str] = {}

    def _model(self, checkpoint: str) -> tuple[torch.nn.Module, ModelSpec, bool]:
        spec, untrained = self.opts.spec_for(checkpoint)
        if not Path(checkpoint).is_file():
            load_checkpoint(torch.nn.Module(), checkpoint)  # raises the "not found, get it here" message
        if spec not in self.built:
            self.built[spec] = build_model(spec, "cpu")
        return self.built[spec], spec, untrained

    def check(self, checkpoint: str) -> None:
        """Read `checkpoint` against its model (keys, shapes) without loading it: fail before any stage runs."""
        if checkpoint not in self.loaded:
            model, _, _ = self._model(checkpoint)
            read_checkpoint(model, checkpoint)

    def get(self, checkpoint: str) -> tuple[torch.nn.Module, ModelSpec, bool]:
        """The model of `checkpoint` with its weights loaded, on the run's device (loaded on first use only)."""
        if checkpoint not in self.loaded:
            model, spec, untrained = self._model(checkpoint)
            if any(model is held for held, _, _ in self.loaded.values()):
                model = copy.deepcopy(model)  # the built instance holds another checkpoint's weights
            load_checkpoint(model, checkpoint)
            self.loaded[checkpoint] = (model.to(self.opts.device), spec, untrained)
        return self.loaded[checkpoint]

    def sha256(self, checkpoint: str) -> str:
        """The checkpoint's sha256 for provenance, computed once per process."""
        if checkpoint not in self.digests:
            self.digests[checkpoint] = sha256sum(checkpoint)
        return self.digests[checkpoint]


def segment_tomogram(
    normalized: np.ndarray,
    opts: EtsamOptions,
    stages: tuple[str, ...] = ("stage1", "stage2"),
    stage1_logits: np.ndarray | None = None,
    name: str = "tomogram",
    models: ModelCache | None = None,
) -> EtsamResult:
    """ETSAM Stage 1 and/or Stage 2 on a normalized tomogram (Stage 2 alone needs `stage1_logits`); `models`
    is a cache shared by the tomograms of one process (a new one when not given)."""
    opts.validate()
    check_volume(normalized, name)
    if opts.threads is not None:  # a job's share of the cores (the rule's threads:), not all of them
        torch.set_num_threads(opts.threads)
    if opts.bin > 1:
        return _segment_binned(normalized, opts, stages, stage1_logits, name, models)
    normalized = np.asarray(normalized, dtype=np.float32)
    boxes = _tiles(normalized.shape, opts.split, name)
    every_n, spacing = opts.prompt_spacing()
    result = EtsamResult()
    models = models or ModelCache(opts)
    if "stage1" in stages and "stage2" in stages:
        models.check(opts.stage2_checkpoint)  # a bad Stage 2 checkpoint fails before Stage 1 runs
    common = dict(
        device=opts.device,
        dtype=opts.dtype,
        encoder_batch=opts.encoder_batch,
        progress=opts.progress,
        keep_aspect=opts.keep_aspect,
    )
    if "stage1" in stages:
        model, spec, untrained = models.get(opts.stage1_checkpoint)
        vols1 = [b.of(normalized) for b in boxes]

        def prompts1(reverse: bool) -> list[dict[int, np.ndarray]]:
            return [
                build_prompts(
                    opts.prompt_stage1, v.shape, model.image_size, every_n, spacing, reverse=reverse
                )
                for v in vols1
            ]

        stage1_logits = np.empty(normalized.shape, dtype=np.float32)
        outs = [b.of(stage1_logits) for b in boxes]
        _propagate_stage(model, vols1, prompts1, outs, "stage1", opts.bidirectional, result, common)
        result.stage1_logits, result.untrained = stage1_logits, result.untrained or untrained
        result.checkpoints["stage1"], result.specs["stage1"] = opts.stage1_checkpoint, asdict(spec)
        result.checkpoint_sha256["stage1"] = models.sha256(opts.stage1_checkpoint)
    if "stage2" in stages:
        if stage1_logits is None:
            raise ValueError("Stage 2 needs the Stage 1 logits")
        check_volume(stage1_logits, f"{name} (Stage 1 logits)")
        model, spec, untrained = models.get(opts.stage2_checkpoint)
        s1_tiles = [b.of(stage1_logits) for b in boxes]
        # per tile, as upstream: the Stage 1 logits are min-max normalized over the tile
        vols2 = [FusedVolume(b.of(normalized), s1) for b, s1 in zip(boxes, s1_tiles, strict=True)]

        def prompts2(reverse: bool) -> list[dict[int, np.ndarray]]:
            return [
                build_prompts(
                    opts.prompt_stage2,
                    v.shape,
                    model.image_size,
                    every_n,
                    spacing,
                    stage1_logits=s1,
                    stage1_threshold=opts.stage1_threshold,
                    reverse=reverse,
                )
                for v, s1 in zip(vols2, s1_tiles, strict=True)
            ]

        stage2_logits = np.empty(normalized.shape, dtype=np.float32)
        outs = [b.of(stage2_logits) for b in boxes]
        _propagate_stage(model, vols2, prompts2, outs, "stage2", opts.bidirectional, result, common)
        result.stage2_logits = stage2_logits
        result.untrained = result.untrained or untrained
        result.checkpoints["stage2"], result.specs["stage2"] = opts.stage2_checkpoint, asdict(spec)
        result.checkpoint_sha256["stage2"] = models.sha256(opts.stage2_checkpoint)
    return result


def _tiles(shape: tuple[int, ...], count: int, name: str) -> list:
    """The XY tiles of split processing (one box of the whole slice when count is 1)."""
    boxes = tile_boxes(shape[1], shape[2], count)
    if count > 1:
        small = min(min(b.y1 - b.y0, b.x1 - b.x0) for b in boxes)
        if small < MIN_SLICE:
            raise InputError(
                f"{name}: slices of {shape[1]}x{shape[2]} px split into {count} tiles give tiles of "
                f"{small} px (ETSAM needs at least {MIN_SLICE})"
            )
        log.info(
            "%s: split processing, %d tiles %s (off by default; the paper does not split)",
            name,
            count,
            ", ".join(f"Y[{b.y0}:{b.y1}] X[{b.x0}:{b.x1}]" for b in boxes),
        )
    return boxes


def _propagate_stage(
    model, volumes, prompts_for, outs, stage: str, bidirectional: bool, result, common
) -> None:
    """One stage's logits into `outs` (one per tile): forward from slice 0, or (bidirectional) fused with a
    backward pass from the last slice."""
    desc = f"ETSAM stage {stage[-1]}"
    if not bidirectional:
        _, result.stats[stage] = propagate_tiles(
            model, volumes, prompts_for(False), outs, desc=desc, **common
        )
        return
    forward, backward = prompts_for(False), prompts_for(True)
    _, result.stats[stage] = propagate_tiles(
        model, volumes, forward, outs, desc=f"{desc} (forward)", **common
    )
    back, result.stats[f"{stage}_backward"] = propagate_tiles(
        model, volumes, backward, None, desc=f"{desc} (backward)", reverse=True, **common
    )
    for out, b, fp, bp in zip(outs, back, forward, backward, strict=True):
        fuse_passes(out, b, fp, bp, out=out)


def bin_slices(volume: np.ndarray, factor: int) -> np.ndarray:
    """Block-average each slice factor x factor (the remainder rows/columns are dropped), float32."""
    n, h, w = volume.shape
    hb, wb = h // factor, w // factor
    out = np.empty((n, hb, wb), np.float32)
    for z in range(n):
        block = np.asarray(volume[z, : hb * factor, : wb * factor], np.float32)
        out[z] = block.reshape(hb, factor, wb, factor).mean(axis=(1, 3))
    return out


def unbin_slices(logits: np.ndarray, shape: tuple[int, int, int], chunk: int = 16) -> np.ndarray:
    """Bilinear upsampling of binned logits back to the full slice size."""
    out = np.empty(shape, np.float32)
    for z in range(0, shape[0], chunk):
        t = torch.from_numpy(np.ascontiguousarray(logits[z : z + chunk]))[:, None]
        up = torch.nn.functional.interpolate(t, size=shape[1:], mode="bilinear", align_corners=False)
        out[z : z + chunk] = up[:, 0].numpy()
    return out


def _segment_binned(normalized, opts, stages, stage1_logits, name, models) -> EtsamResult:
    """`opts.bin` > 1: run on block-averaged slices (grid spacing scaled), upsample the logits back."""
    from dataclasses import replace

    f = opts.bin
    if min(normalized.shape[1:]) // f < MIN_SLICE:
        raise InputError(
            f"{name}: slices of {normalized.shape[1]}x{normalized.shape[2]} px are too small to bin by {f}"
        )
    log.info(
        "%s: binning slices %dx%d by %d (off by default; the paper does not bin)",
        name,
        *normalized.shape[1:],
        f,
    )
    inner = replace(
        opts,
        bin=1,
        grid_spacing=max(1, round(opts.grid_spacing / f)),
        split_grid_spacing=max(1, round(opts.split_grid_spacing / f)),
    )
    s1 = None if stage1_logits is None else bin_slices(stage1_logits, f)
    result = segment_tomogram(bin_slices(normalized, f), inner, stages, s1, name, models)
    for key in ("stage1_logits", "stage2_logits"):
        value = getattr(result, key)
        if value is not None:
            setattr(result, key, unbin_slices(value, normalized.shape))
    return result


def gpu_record(device: str) -> dict[str, Any]:
    """The `{rule}/{tomo}.gpu.json` record: device, GPU name and peak GPU memory (null on CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return {
            "device": str(
                dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())
            ),
            "gpu_name": torch.cuda.get_device_name(dev),
            "peak_gpu_memory_mb": torch.cuda.max_memory_allocated(dev) / 2**20,
        }
    return {"device": "cpu", "gpu_name": None, "peak_gpu_memory_mb": None}


def option_parameters(opts: EtsamOptions) -> dict[str, Any]:
    """The options a provenance record keeps: what decides the result (not progress bars or thread counts)."""
    p = asdict(opts)
    p.pop("progress")
    p.pop("threads")  # how many cores ran it, not what was computed
    return p


def _provenance(
    result: EtsamResult, opts: EtsamOptions, inputs: dict[str, str], method: str
) -> dict[str, Any]:
    return provenance_record(
        f"etsam:{method}",
        option_parameters(opts),
        inputs,
        method=method,
        untrained=result.untrained,
        checkpoints={
            k: {"path": v, "sha256": result.checkpoint_sha256.get(k) or sha256sum(v)}
            for k, v in result.checkpoints.items()
        },
        models=result.specs,
        timing={
            k: {
                "slices": s.frames,
                "seconds": round(s.seconds, 3),
                "slices_per_second": round(s.frames_per_second, 3),
                "encoder_batch": s.encoder_batch,
                "slices_with_object": s.frames_with_object,
                "tiles": s.tiles,
            }
            for k, s in result.stats.items()
        },
    )


def _stage(outputs: dict[str, Path]) -> tuple[Path, dict[str, Path]]:
    """A staging folder beside the first output; each output is renamed into place only when all are done."""
    first = next(iter(outputs.values()))
    try:
        first.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".etsam-staging-", dir=first.parent))
    except OSError as err:
        raise write_error(first.parent, err, folder=True) from None
    return staging, {k: staging / f"{k}-{p.name}" for k, p in outputs.items()}


def _publish(staging: Path, staged: dict[str, Path], outputs: dict[str, Path]) -> None:
    for key, path in outputs.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged[key], path)
        except OSError as err:
            raise write_error(path, err) from None
        log.info("wrote %s", path)
    shutil.rmtree(staging, ignore_errors=True)


def _write_all(outputs: dict[str, Path], writers: dict[str, Any]) -> None:
    """Write every output into staging and publish them together; on failure nothing is left behind.

    A file-system error (disk full, read-only) is an OutputError naming the output, not the staging file.
    """
    staging, staged = _stage(outputs)
    try:
        for key, write in writers.items():
            try:
                write(staged[key])
            except OutputError as err:
                raise OutputError(outputs[key], err.reason) from None
        _publish(staging, staged, outputs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_outputs(outputs: dict[str, Path], inputs: tuple[str | os.PathLike | None, ...] = ()) -> None:
    """Before any work: every output's folder takes files, each output replaces only a regular file, none is an input."""
    for folder in {path.parent for path in outputs.values()}:
        require_writable_dir(folder)
    for path in outputs.values():
        if path.is_dir():
            raise OutputError(path, "a folder is in the way of this output file")
    check_replaceable_outputs(outputs.values(), inputs)


def run_stage1(
    normalized_path: Path,
    logits_out: Path,
    mask_out: Path,
    opts: EtsamOptions,
    provenance_out: Path | None = None,
    gpu_json: Path | None = None,
    labels: dict[str, Any] | None = None,
) -> EtsamResult:
    """Workflow step etsam_stage1: normalized MRC -> Stage 1 logits and mask (logits > stage1_threshold).

    labels: extra entries of the provenance's parameters (e.g. the preset and variant that chose `opts`).
    """
    volume, voxel = read_volume(normalized_path, dtype=np.float32)
    write = partial(write_volume, voxel_size=voxel, placement=read_placement(normalized_path))
    result = segment_tomogram(volume, opts, stages=("stage1",), name=str(normalized_path))
    outputs = {"logits": Path(logits_out), "mask": Path(mask_out)}
    writers = {
        "logits": lambda p: write(p, result.stage1_logits),
        "mask": lambda p: write(p, threshold(result.stage1_logits, opts.stage1_threshold)),
    }
    if provenance_out:
        outputs["provenance"] = Path(provenance_out)
        record = _provenance(result, opts, {"normalized": str(normalized_path)}, "etsam_stage1")
        record["parameters"].update(labels or {})
        writers["provenance"] = lambda p: write_json(p, record)
    if gpu_json:
        outputs["gpu"] = Path(gpu_json)
        writers["gpu"] = lambda p: write_json(p, gpu_record(opts.device))
    _write_all(outputs, writers)
    return result


def run_stage2(
    normalized_path: Path,
    stage1_logits_path: Path,
    logits_out: Path | None,
    mask_out: Path,
    provenance_out: Path,
    opts: EtsamOptions,
    gpu_json: Path | None = None,
    labels: dict[str, Any] | None = None,
    method: str = "etsam",
) -> EtsamResult:
    """Workflow step etsam_stage2: normalized + Stage 1 logits -> Stage 2 logits, final mask, provenance.

    labels: extra entries of the provenance's parameters; method: the method name it records.
    """
    volume, voxel = read_volume(normalized_path, dtype=np.float32)
    write = partial(write_volume, voxel_size=voxel, placement=read_placement(normalized_path))
    s1, _ = read_volume(stage1_logits_path, dtype=np.float32)
    if s1.shape != volume.shape:
        raise InputError(
            f"{stage1_logits_path}: shape {s1.shape} differs from {normalized_path}'s {volume.shape}"
        )
    result = segment_tomogram(volume, opts, stages=("stage2",), stage1_logits=s1, name=str(normalized_path))
    s1_untrained = untrained_flag(Path(stage1_logits_path).with_name("stage1_provenance.json"))
    result.untrained = result.untrained or bool(s1_untrained)
    outputs = {"mask": Path(mask_out), "provenance": Path(provenance_out)}
    record = _provenance(
        result, opts, {"normalized": str(normalized_path), "stage1_logits": str(stage1_logits_path)}, method
    )
    record["parameters"].update(labels or {})
    writers = {
        "mask": lambda p: write(p, threshold(result.stage2_logits, opts.threshold)),
        "provenance": lambda p: write_json(p, record),
    }
    if logits_out:
        outputs["logits"] = Path(logits_out)
        writers["logits"] = lambda p: write(p, result.stage2_logits)
    if gpu_json:
        outputs["gpu"] = Path(gpu_json)
        writers["gpu"] = lambda p: write_json(p, gpu_record(opts.device))
    _write_all(outputs, writers)
    return result


STALE_LOGITS = ("stage1_logits.mrc", "stage2_logits.mrc")


def run_segment(
    tomogram: Path,
    out_dir: Path,
    opts: EtsamOptions,
    normalized: bool = False,
    normalization: str = "max_positive",
    store_logits: bool = False,
    preset: str | None = None,
    models: ModelCache | None = None,
    target_voxel_size: float | None = None,
) -> EtsamResult:
    """`tomoseg segment`: both stages on one MRC; mask.mrc, provenance.json and optionally both logits.

    An OME-Zarr input is read at the level nearest `target_voxel_size` (Angstrom; default level 0).

    Everything that can be checked is checked before the stages run: the output folder, the options, both
    checkpoints (and sidecars), the input. Logits of an earlier run in `out_dir` that this run does not
    rewrite are removed once the new outputs are in place, so the folder never mixes two runs.
    """
    out_dir = Path(out_dir)
    outputs = {"mask": out_dir / "mask.mrc", "provenance": out_dir / "provenance.json"}
    if store_logits:
        outputs.update({name.removesuffix(".mrc"): out_dir / name for name in STALE_LOGITS})
    check_outputs(outputs, (tomogram, opts.stage1_checkpoint, opts.stage2_checkpoint))
    opts.validate()
    for checkpoint in (opts.stage1_checkpoint, opts.stage2_checkpoint):
        opts.spec_for(checkpoint)  # a bad sidecar fails here
        if not Path(checkpoint).is_file():
            load_checkpoint(torch.nn.Module(), checkpoint)  # the "not found, get it here" message
    shape, _, _ = read_header(tomogram, target_voxel_size)
    voxels = int(np.prod(shape))
    # mask (1 byte a voxel), logits (float32, two of them when stored), and 1 MB for provenance and slack
    require_space(out_dir, voxels * (1 + (8 if store_logits else 0)) + (1 << 20))
    volume, voxel = read_volume(tomogram, dtype=np.float32, target_voxel_size=target_voxel_size)
    write = partial(write_volume, voxel_size=voxel, placement=read_placement(tomogram, target_voxel_size))
    check_volume(volume, str(tomogram))
    if normalized:
        check_normalized(volume, str(tomogram))
    else:
        volume = normalize_volume(volume, normalization, name=str(tomogram))  # type: ignore[arg-type]
    result = segment_tomogram(volume, opts, name=str(tomogram), models=models)
    record = _provenance(result, opts, {"tomogram": str(tomogram)}, "etsam")
    record["parameters"].update(segment_parameters(normalized, normalization, preset, target_voxel_size))
    writers = {
        "mask": lambda p: write(p, threshold(result.stage2_logits, opts.threshold)),
        "provenance": lambda p: write_json(p, record),
    }
    if store_logits:
        writers["stage1_logits"] = lambda p: write(p, result.stage1_logits)
        writers["stage2_logits"] = lambda p: write(p, result.stage2_logits)
    _write_all(outputs, writers)
    if not store_logits:
        _remove_stale(out_dir, STALE_LOGITS)
    return result


def segment_parameters(
    normalized: bool, normalization: str, preset: str | None, target_voxel_size: float | None = None
) -> dict[str, Any]:
    """What `run_segment` records beside the engine options: the input's normalization, the preset and the
    OME-Zarr level's target voxel size."""
    params: dict[str, Any] = {
        "normalized_input": normalized,
        "normalization": None if normalized else normalization,
    }
    if preset is not None:
        params["preset"] = preset
    if target_voxel_size is not None:
        params["ome_zarr_target_voxel_size"] = target_voxel_size
    return params


def _remove_stale(out_dir: Path, names: tuple[str, ...]) -> None:
    """Remove files of an earlier run that the new outputs would otherwise sit beside."""
    for name in names:
        stale = out_dir / name
        if stale.is_file():
            log.warning("%s: removed, left by an earlier run (this run did not write logits)", stale)
            stale.unlink()


def check_normalized(volume: np.ndarray, name: str, tolerance: float = 1e-3) -> None:
    """A volume said to be normalized must lie in [0, 1]: raw data passed with --normalized is refused."""
    lo, hi = float(volume.min()), float(volume.max())
    if lo < -tolerance or hi > 1 + tolerance:
        raise InputError(
            f"{name}: values span {lo:.4g}..{hi:.4g}, outside [0, 1], but the input was declared normalized "
            "(--normalized); drop --normalized to normalize it, or normalize it with `tomoseg normalize`"
        )
