"""Membrain-Seg and TARDIS baselines: each tool runs as a subprocess of its own environment, outputs checked.

Neither tool is importable here. Each runs through a small driver script (`tomoseg/toolscripts/`)
executed by the tool environment's Python, which calls the tool's real command line. Each job gets
its own working directory and HOME (TARDIS writes next to its input and into ~), and a job only
succeeds when the expected files exist, are readable and have the input's shape: both tools can exit
0 after failing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.errors import ToolError
from tomoseg.core.io import (
    InputError,
    read_header,
    read_json,
    read_volume,
    sha256sum,
    write_json,
    write_volume,
)
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

TOOLSCRIPTS = Path(__file__).resolve().parent / "toolscripts"
TOOL_PACKAGES = {"membrain": "membrain-seg", "tardis": "tardis-em"}
PINNED_VERSIONS = {"membrain": "0.0.10", "tardis": "0.3.36"}
"""The versions `make setup` and envs/*.yaml install; a different version is logged and recorded."""

MEMBRAIN_DEFAULTS: dict[str, Any] = {
    "sliding_window_size": 160,
    "test_time_augmentation": True,
    "segmentation_threshold": 0.0,
}
"""`membrain segment` defaults (0.0.10): 160^3 window, 8-fold flip TTA, logits > 0.0."""
TARDIS_DEFAULTS: dict[str, Any] = {"patch_size": 128, "rotate": True, "normalize_px": None, "threshold": 0.25}
"""`tardis_mem` defaults (0.3.36): 128 patches, 4 rotations, rescale to 15 A (None = tool default), CNN threshold 0.25."""

WEIGHTS_HELP = {
    "membrain": (
        "Membrain-Seg's trained weights are published by its authors on Google Drive (linked from the "
        "membrain-seg README): the recommended model https://drive.google.com/file/d/1hruug1GbO4V8C4bkE5DZJeybDyOxZ7PX "
        "and MemBrain_seg_v10_alpha.ckpt https://drive.google.com/file/d/1tSQIz_UCsQZNfyHg0RxD-4meFgolszo8 . "
        "Download one and put it at {path}, or point `baselines: membrain: checkpoint:` in the config at it. "
        "For a run with random weights (demo/tests only) use `tomoseg make-baseline-checkpoints --out DIR`."
    ),
    "tardis": (
        "TARDIS's trained membrane weights are published in the tool's public S3 bucket 'tardis-weigths' as "
        "https://tardis-weigths.s3.dualstack.us-east-1.amazonaws.com/tardis_em/fnet_attn_32/membrane_3d/V_<N>/model_weights.pth "
        "(TARDIS itself caches them as ~/.tardis_em/fnet_attn_32/membrane_3d/model_weights.pth when it has internet). "
        "Download the newest V_<N> and put it at {path}, or point `baselines: tardis: checkpoint:` in the config at it. "
        "For a run with random weights (demo/tests only) use `tomoseg make-baseline-checkpoints --out DIR`."
    ),
}


class BaselineError(ToolError):
    """A baseline tool failed (also when it exited 0); the message carries the tool's own words."""


class MissingCheckpointError(InputError):
    """The configured checkpoint does not exist; the message says where the weights are published."""


def require_checkpoint(tool: str, path: str | os.PathLike | None) -> Path:
    """The checkpoint path if the file exists, else a MissingCheckpointError naming where to get it."""
    if not path:
        raise MissingCheckpointError(
            f"no {tool} checkpoint configured. " + WEIGHTS_HELP[tool].format(path="a path of your choice")
        )
    ckpt = Path(path)
    if not ckpt.is_file():
        raise MissingCheckpointError(
            f"{ckpt}: {tool} checkpoint not found. " + WEIGHTS_HELP[tool].format(path=ckpt)
        )
    if ckpt.stat().st_size == 0:
        raise MissingCheckpointError(
            f"{ckpt}: {tool} checkpoint is empty (0 bytes). " + WEIGHTS_HELP[tool].format(path=ckpt)
        )
    return ckpt.resolve()


def tool_python(tool: str, python: str | os.PathLike | None) -> Path:
    """The Python of the tool's environment (None = this interpreter, e.g. inside a conda env with the tool)."""
    if not python:
        return Path(sys.executable)
    exe = Path(python)
    if not exe.exists():
        raise InputError(
            f"{exe}: Python of the {tool} environment not found; create it with `make baselines` "
            f"(virtual environments under venvs/) or set `baselines: {tool}: python:` in the config"
        )
    # Keep the venv's path (a venv's bin/python is a symlink to the base interpreter).
    return exe.absolute()


def checkpoint_marker(checkpoint: Path) -> dict[str, Any]:
    """The sidecar record `<checkpoint>.tomoseg.json` written for tomoseg-made checkpoints ({} if none)."""
    sidecar = checkpoint.with_name(checkpoint.name + ".tomoseg.json")
    return read_json(sidecar) if sidecar.exists() else {}


class GpuMemorySampler:
    """Peak GPU memory of one process tree, sampled from NVML's per-process accounting via nvidia-smi."""

    QUERY = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.available = shutil.which("nvidia-smi") is not None
        self.peak_mb: float | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> GpuMemorySampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _tree(self) -> set[int]:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return {self.pid} | {child.pid for child in proc.children(recursive=True)}
        except psutil.Error:
            return {self.pid}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    self.QUERY, capture_output=True, text=True, timeout=10, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            pids = self._tree()
            used = 0.0
            for line in out.splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
                    with contextlib.suppress(ValueError):
                        used += float(parts[1])
            self.samples += 1
            if used > 0 and (self.peak_mb is None or used > self.peak_mb):
                self.peak_mb = used
            self._stop.wait(self.interval_s)


@contextlib.contextmanager
def _workdir(out_dir: Path, keep: bool = False) -> Iterator[Path]:
    """A private working directory (with its own HOME) beside the output folder, removed afterwards."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.work-", dir=out_dir.parent)).absolute()
    (work / "home").mkdir()
    (work / "in").mkdir()
    try:
        yield work
    finally:
        if keep:
            log.info("kept working directory %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _stage_input(tomogram: Path, work: Path) -> Path:
    """Link the input into the job's own input folder (tools write next to their input)."""
    staged = work / "in" / (tomogram.stem + ".mrc")
    try:
        staged.symlink_to(tomogram)
    except OSError:
        shutil.copyfile(tomogram, staged)
    return staged


def _tool_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["MPLCONFIGDIR"] = str(home / ".matplotlib")
    env.setdefault("TERM", "dumb")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").replace("\r", "\n")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _run_driver(command: list[str], work: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a tool driver in `work` with HOME=work/home; return its JSON result plus timing and GPU peak."""
    log_path = work / "tool.log"
    log.info("running: %s", shlex.join(command))
    start = time.monotonic()
    with open(log_path, "w") as handle:
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=_tool_env(work / "home", extra_env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            with GpuMemorySampler(proc.pid) as sampler:
                returncode = proc.wait()
        except BaseException:  # interrupted or cancelled: do not leave the tool running
            proc.kill()
            proc.wait()
            raise
    seconds = time.monotonic() - start
    for line in _tail(log_path, 60).splitlines():
        log.info("tool| %s", line)
    result_path = Path(command[command.index("--result") + 1])
    if returncode != 0 or not result_path.exists():
        raise BaselineError(
            f"{shlex.join(command)} exited {returncode} without a result; last output:\n{_tail(log_path)}"
        )
    result = read_json(result_path)
    result.update(
        driver_returncode=returncode,
        runtime_s=round(seconds, 3),
        peak_gpu_memory_mb=sampler.peak_mb,
        gpu_samples=sampler.samples,
        gpu_sampler="nvidia-smi --query-compute-apps (NVML per-process), process tree, every 0.5 s"
        if sampler.available
        else None,
        log=log_path,
    )
    return result


def _read_output(path: str | None, what: str, tool: str, result: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """A tool output as an array; a missing or unreadable file is a BaselineError with the tool's message."""
    if not path:
        raise BaselineError(
            f"{tool} exited {result.get('returncode')} but wrote no {what}"
            + (f"; the tool reported:\n{result['tool_error'].strip()}" if result.get("tool_error") else "")
            + f"\nlast output:\n{_tail(result['log'])}"
        )
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False), None
        return read_volume(path)
    except (InputError, ValueError, OSError) as err:
        raise BaselineError(f"{tool} wrote an unreadable {what} ({err})") from None


def _check_shape(array: np.ndarray, shape: tuple[int, ...], what: str, tool: str, tomogram: Path) -> None:
    if array.shape != tuple(shape):
        raise BaselineError(
            f"{tool}: {what} has shape {array.shape} but the input {tomogram} has {tuple(shape)} (Z, Y, X); "
            "the tool changed the axis order or size, refusing to store it"
        )


def _write_gpu_json(path: str | os.PathLike | None, result: dict[str, Any]) -> dict[str, Any]:
    record = {
        "device": result.get("device", "cpu"),
        "gpu_name": result.get("gpu_name"),
        "peak_gpu_memory_mb": result.get("peak_gpu_memory_mb")
        if result.get("device", "cpu") != "cpu"
        else None,
        "sampler": result.get("gpu_sampler"),
        "samples": result.get("gpu_samples", 0),
    }
    if path:
        write_json(path, record)
    return record


def _tool_record(tool: str, result: dict[str, Any], python: Path) -> dict[str, Any]:
    version = result.get("tool_version")
    if version != PINNED_VERSIONS[tool]:
        log.warning("%s %s found, tomoseg pins %s", TOOL_PACKAGES[tool], version, PINNED_VERSIONS[tool])
    return {
        "name": TOOL_PACKAGES[tool],
        "version": version,
        "pinned_version": PINNED_VERSIONS[tool],
        "torch": result.get("torch_version"),
        "python": str(python),
    }


def _checkpoint_record(ckpt: Path) -> dict[str, Any]:
    return {
        "path": str(ckpt),
        "sha256": sha256sum(ckpt),
        "bytes": ckpt.stat().st_size,
        "marker": checkpoint_marker(ckpt),
    }


def _is_untrained(untrained: bool | None, ckpt: Path) -> bool:
    marked = bool(checkpoint_marker(ckpt).get("untrained", False))
    return marked if untrained is None else bool(untrained) or marked


def _keep_files(files: dict[str, str], dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    kept = {}
    for key, src in files.items():
        if src and Path(src).exists() and not src.endswith(".npy"):
            target = dest / Path(src).name
            shutil.copyfile(src, target)
            kept[key] = str(target)
    return kept


def run_membrain(
    tomogram: str | os.PathLike,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    python: str | os.PathLike | None = None,
    sliding_window_size: int = MEMBRAIN_DEFAULTS["sliding_window_size"],
    test_time_augmentation: bool = MEMBRAIN_DEFAULTS["test_time_augmentation"],
    segmentation_threshold: float = MEMBRAIN_DEFAULTS["segmentation_threshold"],
    settings: str = "tool defaults",
    untrained: bool | None = None,
    gpu_json: str | os.PathLike | None = None,
    keep_tool_outputs: bool = False,
) -> dict[str, Any]:
    """Segment one tomogram with Membrain-Seg; store scores.mrc (logits), mask.mrc (logits > threshold), provenance."""
    tomogram, out = Path(tomogram).resolve(), Path(out_dir)
    shape, _, voxel_size = read_header(tomogram)
    ckpt = require_checkpoint("membrain", checkpoint)
    py = tool_python("membrain", python)
    if sliding_window_size % 32 or sliding_window_size < 32:
        raise InputError(
            f"membrain sliding_window_size must be a positive multiple of 32, got {sliding_window_size}"
        )
    flags = {
        "sliding_window_size": int(sliding_window_size),
        "test_time_augmentation": bool(test_time_augmentation),
        "segmentation_threshold": float(segmentation_threshold),
        "store_probabilities": True,
    }
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    with _workdir(out) as work:
        staged = _stage_input(tomogram, work)
        command = [
            str(py), str(TOOLSCRIPTS / "membrain_tool.py"), "run",
            "--input", str(staged), "--checkpoint", str(ckpt), "--out-folder", str(work / "out"),
            "--sliding-window-size", str(flags["sliding_window_size"]),
            "--test-time-augmentation", str(int(flags["test_time_augmentation"])),
            "--segmentation-threshold", repr(flags["segmentation_threshold"]),
            "--result", str(work / "result.json"),
        ]  # fmt: skip
        result = _run_driver(command, work, env)
        check = result["checkpoint_check"]
        if not check.get("ok"):
            raise BaselineError(
                f"{ckpt}: not every checkpoint key loads into Membrain-Seg's model (the tool would silently "
                f"ignore them): {check.get('error') or ''} missing {check.get('missing', [])[:10]} "
                f"({len(check.get('missing', []))}), unexpected {check.get('unexpected', [])[:10]} "
                f"({len(check.get('unexpected', []))}), differing {check.get('differing', [])[:10]}"
            )
        if result.get("returncode") != 0:
            raise BaselineError(
                f"membrain segment exited {result.get('returncode')}; last output:\n{_tail(result['log'])}"
            )
        scores, _ = _read_output(
            result["outputs"].get("scores"), "score map (<stem>_scores.mrc)", "membrain", result
        )
        tool_mask, _ = _read_output(
            result["outputs"].get("segmented"), "segmentation (<stem>_*_segmented.mrc)", "membrain", result
        )
        _check_shape(scores, shape, "score map", "membrain", tomogram)
        _check_shape(tool_mask, shape, "segmentation", "membrain", tomogram)
        scores = scores.astype(np.float32, copy=False)
        if not np.isfinite(scores).all():
            raise BaselineError("membrain wrote non-finite scores")
        mask = (scores > flags["segmentation_threshold"]).astype(np.uint8)
        differing = int(np.count_nonzero(mask != (tool_mask != 0)))
        if differing:
            log.warning("our mask differs from membrain's own segmentation in %d voxels", differing)
        write_volume(out / "scores.mrc", scores, voxel_size)
        write_volume(out / "mask.mrc", mask, voxel_size)
        shutil.copyfile(result["log"], out / "tool.log")
        kept = _keep_files(result["outputs"], out / "tool") if keep_tool_outputs else {}
        record = provenance_record(
            "membrain",
            parameters=flags,
            inputs={"tomogram": str(tomogram)},
            packages=("tomoseg", "numpy", "mrcfile"),
            method="membrain",
            untrained=_is_untrained(untrained, ckpt),
            settings=settings,
            tool=_tool_record("membrain", result, py),
            checkpoint=_checkpoint_record(ckpt),
            checkpoint_check={k: check[k] for k in ("model_keys", "checkpoint_keys", "parameters", "ok")},
            command=result.get("command"),
            command_line=shlex.join(result.get("command") or []),
            driver_command=command,
            environment=env,
            device=result.get("device"),
            runtime_s=result["runtime_s"],
            shape=list(shape),
            voxel_size_zyx=list(voxel_size),
            mask_rule=f"scores > {flags['segmentation_threshold']}",
            tool_mask_voxels_differing=differing,
            tool_outputs=kept,
            gpu=_write_gpu_json(gpu_json, result),
        )
        write_json(out / "provenance.json", record)
    return record


def run_tardis(
    tomogram: str | os.PathLike,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    python: str | os.PathLike | None = None,
    pixel_size: float | None = None,
    patch_size: int = TARDIS_DEFAULTS["patch_size"],
    rotate: bool = TARDIS_DEFAULTS["rotate"],
    normalize_px: float | None = TARDIS_DEFAULTS["normalize_px"],
    threshold: float = TARDIS_DEFAULTS["threshold"],
    device: str = "auto",
    settings: str = "tool defaults",
    untrained: bool | None = None,
    gpu_json: str | os.PathLike | None = None,
    tool_mask: bool = False,
    keep_tool_outputs: bool = False,
) -> dict[str, Any]:
    """Segment one tomogram with TARDIS; store probabilities.mrc, mask.mrc (probabilities >= threshold), provenance.

    tool_mask=True runs the tool a second time with its own threshold and stores its mask as
    tool_mask.mrc (which zeroes a ~1% X/Y border and is missing when empty), for comparison.
    """
    tomogram, out = Path(tomogram).resolve(), Path(out_dir)
    shape, _, voxel_size = read_header(tomogram)
    ckpt = require_checkpoint("tardis", checkpoint)
    py = tool_python("tardis", python)
    # The MRC header stores float32 (13.48 reads back as 13.47999954...); TARDIS itself rounds to 3 decimals.
    px = float(pixel_size) if pixel_size else round(float(voxel_size[2]), 4)
    if not px > 0:
        raise InputError(
            f"{tomogram}: no pixel size in the MRC header; TARDIS needs it (set baselines: tardis: pixel_size)"
        )
    flags = {
        "pixel_size": px,
        "patch_size": int(patch_size),
        "rotate": bool(rotate),
        "normalize_px": normalize_px,
        "cnn_threshold": "0",
        "output_format": "mrc_None",
        "device": device,
    }

    def driver(work: Path, cnn_threshold: str, name: str) -> dict[str, Any]:
        staged = work / "in" / (tomogram.stem + ".mrc")
        if not staged.exists():
            staged = _stage_input(tomogram, work)
        command = [
            str(py), str(TOOLSCRIPTS / "tardis_tool.py"), "run",
            "--input", str(staged), "--checkpoint", str(ckpt), "--pixel-size", repr(px),
            "--cnn-threshold", cnn_threshold, "--patch-size", str(flags["patch_size"]),
            "--rotate", str(int(flags["rotate"])), "--device", device,
            "--probabilities-npy", str(work / f"{name}.npy"), "--result", str(work / f"{name}.json"),
        ]  # fmt: skip
        if normalize_px is not None:
            command[-4:-4] = ["--normalize-px", repr(float(normalize_px))]
        result = _run_driver(command, work)
        result["driver_command"] = command
        return result

    with _workdir(out) as work:
        result = driver(work, "0", "probabilities")
        probabilities, _ = _read_output(
            result["outputs"].get("probabilities"), "probability map (<stem>_CNN.tif)", "tardis", result
        )
        _check_shape(probabilities, shape, "probability map", "tardis", tomogram)
        probabilities = probabilities.astype(np.float32, copy=False)
        if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
            raise BaselineError("tardis wrote probabilities outside [0, 1] or non-finite values")
        mask = (probabilities >= threshold).astype(np.uint8)
        write_volume(out / "probabilities.mrc", probabilities, voxel_size)
        write_volume(out / "mask.mrc", mask, voxel_size)
        shutil.copyfile(result["log"], out / "tool.log")
        kept = _keep_files(result["outputs"], out / "tool") if keep_tool_outputs else {}
        own: dict[str, Any] = {}
        if tool_mask:
            own_result = driver(work, repr(float(threshold)), "tool_mask")
            path = own_result["outputs"].get("semantic")
            if path:
                semantic, _ = _read_output(path, "semantic mask", "tardis", own_result)
                _check_shape(semantic, shape, "semantic mask", "tardis", tomogram)
                write_volume(out / "tool_mask.mrc", (semantic != 0).astype(np.uint8), voxel_size)
            own = {
                "written": bool(path),
                "command": own_result.get("command"),
                "runtime_s": own_result["runtime_s"],
            }
        record = provenance_record(
            "tardis",
            parameters=flags,
            inputs={"tomogram": str(tomogram)},
            packages=("tomoseg", "numpy", "mrcfile"),
            method="tardis",
            untrained=_is_untrained(untrained, ckpt),
            settings=settings,
            tool=_tool_record("tardis", result, py),
            checkpoint=_checkpoint_record(ckpt),
            command=result.get("command"),
            command_line=shlex.join(result.get("command") or []),
            driver_command=result["driver_command"],
            device=result.get("device"),
            runtime_s=result["runtime_s"],
            shape=list(shape),
            voxel_size_zyx=list(voxel_size),
            mask_rule=f"probabilities >= {threshold} (no border zeroed; the tool's own mask zeroes a ~1% X/Y border)",
            tool_mask=own,
            tool_outputs=kept,
            gpu=_write_gpu_json(gpu_json, result),
        )
        write_json(out / "provenance.json", record)
    return record


TINY_CHECKPOINTS = {
    "membrain": ("membrain_tiny.ckpt", "membrain_tool.py", ["--channels", "4", "8", "16", "32", "64", "128"]),
    "tardis": ("tardis_tiny.pth", "tardis_tool.py", ["--conv-scaler", "8", "--num-conv-layers", "3"]),
}
"""File name, driver script and size options of each tool's tiny checkpoint (real architecture, small widths)."""


def make_baseline_checkpoint(
    tool: str, target: str | os.PathLike, python: str | os.PathLike | None = None, seed: int = 0
) -> Path:
    """A tiny randomly initialised checkpoint of the tool's real architecture at `target`, marked untrained."""
    _, script, options = TINY_CHECKPOINTS[tool]
    py = tool_python(tool, python)
    target = Path(target)
    with _workdir(target) as work:
        tmp = work / target.name
        command = [
            str(py),
            str(TOOLSCRIPTS / script),
            "make",
            str(tmp),
            "--seed",
            str(seed),
            *options,
            "--result",
            str(work / "result.json"),
        ]
        result = _run_driver(command, work)
        if not tmp.exists() or not result.get("ok") or not result.get("check", {"ok": True}).get("ok"):
            raise BaselineError(f"making the tiny {tool} checkpoint failed: {result}")
        marker = {
            "untrained": True,
            "tool": TOOL_PACKAGES[tool],
            "tool_version": result.get("tool_version"),
            "made_by": "tomoseg make-baseline-checkpoints",
            "seed": seed,
            "parameters": result.get("parameters"),
            "architecture": result.get("structure") or {"channels": result.get("channels")},
            "sha256": sha256sum(tmp),
        }
        os.replace(tmp, target)
    write_json(target.with_name(target.name + ".tomoseg.json"), marker)
    log.info("%s: tiny untrained %s checkpoint (%d parameters)", target, tool, marker["parameters"] or -1)
    return target


def make_baseline_checkpoints(
    out_dir: str | os.PathLike,
    membrain_python: str | os.PathLike | None = None,
    tardis_python: str | os.PathLike | None = None,
    tools: tuple[str, ...] = ("membrain", "tardis"),
    seed: int = 0,
) -> dict[str, Path]:
    """Tiny checkpoints of both tools in `out_dir` (membrain_tiny.ckpt, tardis_tiny.pth), for tests and the demo."""
    pythons = {"membrain": membrain_python, "tardis": tardis_python}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        tool: make_baseline_checkpoint(tool, out / TINY_CHECKPOINTS[tool][0], pythons[tool], seed)
        for tool in tools
    }
