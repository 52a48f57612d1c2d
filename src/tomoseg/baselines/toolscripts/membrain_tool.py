"""Run inside the Membrain-Seg environment: describe it, check a checkpoint's keys, or make a tiny one.

`run`: first read the checkpoint as data (`checkpoint_guard`: weights-only, the allow-listed classes,
  Lightning's layout; unless --checkpoint-trust trusted) and make every later load weights-only; then
  load it exactly as `membrain segment` does (Lightning `load_from_checkpoint`, which membrain calls with
  strict=False and so silently ignores missing keys) and compare every key and tensor of the
  checkpoint's state_dict with the loaded model's; refuse to go on unless all match; then run the real
  `membrain segment` command line. Writes a JSON result (versions, device, the checkpoint verdict, the
  key check, command, the tool's exit code, outputs found) to --result.
`make OUT --channels ...`: a randomly initialised checkpoint of the real architecture (DynUNet via
  membrain's own LightningModule) with small channel widths, for tests and the demo.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

from checkpoint_guard import (
    LOADING,
    die_with_parent,
    guarded_command,
    inspect_checkpoint,
    weights_only_everywhere,
)


def probe() -> dict:
    """Versions of membrain-seg and torch in this environment, recorded in provenance."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "tool": "membrain-seg",
        "tool_version": importlib.metadata.version("membrain-seg"),
        "torch_version": torch.__version__,
        "device": "cuda:0" if cuda else "cpu",
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
    }


def check(ckpt_path: str, trusted: bool = False) -> dict:
    """Whether every checkpoint key loads into Membrain-Seg's model (the tool would silently skip some)."""
    import torch
    from membrain_seg.segmentation.networks.inference_unet import PreprocessedSemanticSegmentationUnet

    # Weights-only unless the checkpoint is trusted (published digest or the site's explicit opt-in).
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=not trusted)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return {"ok": False, "error": f"{ckpt_path}: not a Lightning checkpoint (no 'state_dict')"}
    stored = checkpoint["state_dict"]
    model = PreprocessedSemanticSegmentationUnet.load_from_checkpoint(
        ckpt_path, map_location="cpu", strict=False
    )
    loaded = model.state_dict()
    missing = sorted(set(loaded) - set(stored))
    unexpected = sorted(set(stored) - set(loaded))
    differing = sorted(
        k
        for k in set(loaded) & set(stored)
        if loaded[k].shape != stored[k].shape or not torch.equal(loaded[k].cpu(), stored[k].cpu())
    )
    return {
        "ok": not (missing or unexpected or differing),
        "model_keys": len(loaded),
        "checkpoint_keys": len(stored),
        "missing": missing,
        "unexpected": unexpected,
        "differing": differing,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "hyper_parameters": {
            k: v
            for k, v in checkpoint.get("hyper_parameters", {}).items()
            if isinstance(v, (int, float, str, bool, list, tuple))
        },
    }


def make(out: str, channels: list[int], seed: int) -> dict:
    """Write a tiny randomly initialised checkpoint of Membrain-Seg's real architecture (tests, demo)."""
    import pytorch_lightning
    import torch
    from membrain_seg.segmentation.networks.inference_unet import PreprocessedSemanticSegmentationUnet

    torch.manual_seed(seed)
    model = PreprocessedSemanticSegmentationUnet(channels=channels)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": {"channels": channels},
        "pytorch-lightning_version": pytorch_lightning.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    torch.save(checkpoint, out)
    return {
        "ok": True,
        "tool_version": importlib.metadata.version("membrain-seg"),
        "path": out,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "channels": channels,
    }


def _cli(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name}: command not found next to {sys.executable} or on PATH")
    return found


def run(args: argparse.Namespace) -> dict:
    """Run `membrain segment` on one tomogram and report the files it wrote."""
    record = probe()
    record["outputs"], record["returncode"] = {}, None
    trusted = args.checkpoint_trust == "trusted"
    if not trusted:
        verdict = inspect_checkpoint("membrain", args.checkpoint, args.allow_class)
        if not verdict["ok"]:
            record["checkpoint_refused"] = verdict["error"]
            return record
        weights_only_everywhere(args.allow_class)
    record["checkpoint_loading"] = LOADING["trusted" if trusted else "inspect"]
    record["checkpoint_check"] = check(args.checkpoint, trusted)
    if not record["checkpoint_check"]["ok"]:
        return record
    out = Path(args.out_folder)
    tool_args = [
        "segment",
        "--tomogram-path",
        str(Path(args.input).resolve()),
        "--ckpt-path",
        str(Path(args.checkpoint).resolve()),
        "--out-folder",
        str(out.resolve()),
        "--store-probabilities",
        "--sliding-window-size",
        str(args.sliding_window_size),
        "--segmentation-threshold",
        repr(float(args.segmentation_threshold)),
        "--test-time-augmentation" if args.test_time_augmentation else "--no-test-time-augmentation",
    ]
    command = [_cli("membrain"), *tool_args]
    record["command"] = command
    sys.stdout.write("tomoseg: running " + " ".join(command) + "\n")
    sys.stdout.flush()
    launch = command if trusted else guarded_command(command[0], tool_args, args.allow_class)
    record["returncode"] = subprocess.run(launch, check=False, preexec_fn=die_with_parent()).returncode
    stem = Path(args.input).name.rsplit(".", 1)[0]
    scores = out / f"{stem}_scores.mrc"
    if scores.exists():
        record["outputs"]["scores"] = str(scores)
    segmented = sorted(out.glob(f"{stem}_*_segmented.mrc"))
    if len(segmented) == 1:
        record["outputs"]["segmented"] = str(segmented[0])
    return record


def main() -> int:
    """Driver entry point: run one sub-command and write its JSON result for the runner to read."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--input", required=True)
    p_run.add_argument("--checkpoint", required=True)
    p_run.add_argument("--out-folder", required=True)
    p_run.add_argument("--sliding-window-size", type=int, default=160)
    p_run.add_argument("--test-time-augmentation", type=int, default=1)
    p_run.add_argument("--segmentation-threshold", type=float, default=0.0)
    p_run.add_argument("--checkpoint-trust", choices=("inspect", "trusted"), default="inspect")
    p_run.add_argument("--allow-class", action="append", default=[])
    p_run.add_argument("--result", required=True)
    p_make = sub.add_parser("make")
    p_make.add_argument("out")
    p_make.add_argument("--channels", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    p_make.add_argument("--seed", type=int, default=0)
    p_make.add_argument("--result", required=True)
    args = parser.parse_args()
    if args.cmd == "run":
        record = run(args)
    else:
        record = make(args.out, args.channels, args.seed)
        record["check"] = check(args.out)
    Path(args.result).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
