"""Run inside the TARDIS (tardis-em) environment: run the membrane CLI on one tomogram, or make a tiny checkpoint.

`run`: read the checkpoint as data (`checkpoint_guard`: weights-only, TARDIS's layout; unless
  --checkpoint-trust trusted), pick the device, run the real `tardis_mem` command line (its own
  weights_only=False load forced to weights-only) on one file and convert the tool's
  probability output (`<stem>_CNN.tif`, written when the CNN threshold is 0) to a .npy file that the
  main environment can read without tifffile. Writes a JSON result (versions, device, command, the
  tool's exit code, outputs found, the tool's own error log, the checkpoint verdict) to --result.
`make OUT`: a randomly initialised checkpoint of the real fnet_attn architecture with small widths,
  in TARDIS's checkpoint format {"model_struct_dict", "model_state_dict"}, for tests and the demo.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
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


def _device(requested: str) -> tuple[str, str, str | None]:
    """(value for tardis_mem -dv, device label, GPU name) for 'auto', 'cpu' or a GPU index."""
    import torch

    if requested == "auto":
        requested = "0" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu", "cpu", None
    index = int(requested)
    return str(index), f"cuda:{index}", torch.cuda.get_device_name(index)


def _cli(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name}: command not found next to {sys.executable} or on PATH")
    return found


def _find(folder: Path, name: str) -> Path | None:
    """The tool writes into <dir>/Predictions/ (or next to the input when given a file path)."""
    for candidate in (folder / "Predictions" / name, folder / name):
        if candidate.exists():
            return candidate
    return None


def run(args: argparse.Namespace) -> dict:
    """Run TARDIS's membrane model on one tomogram and report the files it wrote."""
    import torch

    trusted = args.checkpoint_trust == "trusted"
    if not trusted:
        verdict = inspect_checkpoint("tardis", args.checkpoint, args.allow_class)
        if not verdict["ok"]:
            return {"checkpoint_refused": verdict["error"], "outputs": {}, "returncode": None}
        weights_only_everywhere(args.allow_class)
    dv, device, gpu_name = _device(args.device)
    src = Path(args.input)
    tool_args = [
        "-dir",
        str(src.parent),
        "-out",
        "mrc_None",
        "-px",
        repr(float(args.pixel_size)),
        "-ct",
        args.cnn_threshold,
        "-cch",
        str(Path(args.checkpoint).resolve()),
        "-ps",
        str(args.patch_size),
        "-rt",
        str(bool(args.rotate)),
        "-dv",
        dv,
    ]
    if args.normalize_px is not None:
        tool_args += ["-norm_px", repr(float(args.normalize_px))]
    command = [_cli("tardis_mem"), *tool_args]
    sys.stdout.write("tomoseg: running " + " ".join(command) + "\n")
    sys.stdout.flush()
    launch = command if trusted else guarded_command(command[0], tool_args, args.allow_class)
    returncode = subprocess.run(launch, cwd=src.parent, check=False, preexec_fn=die_with_parent()).returncode
    stem = src.name.rsplit(".", 1)[0]
    outputs: dict[str, str] = {}
    tif = _find(src.parent, f"{stem}_CNN.tif")
    if tif is not None:
        import numpy as np
        import tifffile

        probabilities = tifffile.imread(tif)
        npy = Path(args.probabilities_npy)
        np.save(npy, np.asarray(probabilities))
        outputs["probabilities"] = str(npy)
        outputs["probabilities_tif"] = str(tif)
    semantic = _find(src.parent, f"{stem}_semantic.mrc")
    if semantic is not None:
        outputs["semantic"] = str(semantic)
    error_log = Path(os.path.expanduser("~")) / "_tardis_error.log"
    return {
        "tool": "tardis-em",
        "tool_version": importlib.metadata.version("tardis-em"),
        "torch_version": torch.__version__,
        "device": device,
        "gpu_name": gpu_name,
        "command": command,
        "returncode": returncode,
        "outputs": outputs,
        "tool_error": error_log.read_text(errors="replace") if error_log.exists() else None,
        "checkpoint_loading": LOADING["trusted" if trusted else "inspect"],
    }


def make(out: str, conv_scaler: int, num_conv_layers: int, patch_size: int, seed: int) -> dict:
    """Write a tiny randomly initialised checkpoint of TARDIS's real architecture (tests, demo)."""
    import torch
    from tardis_em.cnn.cnn import build_cnn_network

    torch.manual_seed(seed)
    structure = {
        "cnn_type": "fnet_attn",
        "classification": False,
        "in_channel": 1,
        "out_channel": 1,
        "img_size": patch_size,
        "dropout": None,
        "num_conv_layers": num_conv_layers,
        "conv_scaler": conv_scaler,
        "conv_kernel": 3,
        "conv_padding": 1,
        "maxpool_kernel": 2,
        "layer_components": "3gcl",
        "attn_features": True,
        "num_group": 8,
        "prediction": False,
    }
    model = build_cnn_network(
        network_type="fnet_attn", structure=structure, img_size=patch_size, prediction=False
    )
    torch.save({"model_struct_dict": structure, "model_state_dict": model.state_dict()}, out)
    return {
        "ok": True,
        "tool_version": importlib.metadata.version("tardis-em"),
        "path": out,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "structure": structure,
    }


def main() -> int:
    """Driver entry point: run one sub-command and write its JSON result for the runner to read."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--input", required=True)
    p_run.add_argument("--checkpoint", required=True)
    p_run.add_argument("--pixel-size", type=float, required=True)
    p_run.add_argument("--cnn-threshold", default="0")
    p_run.add_argument("--patch-size", type=int, default=128)
    p_run.add_argument("--rotate", type=int, default=1)
    p_run.add_argument("--normalize-px", type=float, default=None)
    p_run.add_argument("--device", default="auto")
    p_run.add_argument("--probabilities-npy", required=True)
    p_run.add_argument("--checkpoint-trust", choices=("inspect", "trusted"), default="inspect")
    p_run.add_argument("--allow-class", action="append", default=[])
    p_run.add_argument("--result", required=True)
    p_make = sub.add_parser("make")
    p_make.add_argument("out")
    p_make.add_argument("--conv-scaler", type=int, default=8)
    p_make.add_argument("--num-conv-layers", type=int, default=3)
    p_make.add_argument("--patch-size", type=int, default=128)
    p_make.add_argument("--seed", type=int, default=0)
    p_make.add_argument("--result", required=True)
    args = parser.parse_args()
    if args.cmd == "run":
        record = run(args)
    else:
        record = make(args.out, args.conv_scaler, args.num_conv_layers, args.patch_size, args.seed)
    Path(args.result).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
