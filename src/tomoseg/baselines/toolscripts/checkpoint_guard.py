"""Run inside a baseline tool's environment: a checkpoint is read as data before the tool sees it.

`inspect_checkpoint` loads the file with `torch.load(weights_only=True)`, which rebuilds only tensors,
plain containers and the classes named with --allow-class (the few the tool's checkpoint format
holds), and checks the layout the tool reads. `weights_only_everywhere` then makes every later
`torch.load` of this process weights-only with the same allow-list (torch honours
TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 over an explicit weights_only=False, and child processes inherit it), so
the tool cannot unpickle anything else either. `exec` runs a tool's console script in a process set up
that way. Imported by the other driver scripts from this folder (it is on their sys.path).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import runpy
import sys
from collections.abc import Mapping
from typing import Any

FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
LOADING = {
    "inspect": "weights-only (checked as data first; every torch.load of the tool forced weights-only)",
    "trusted": "the tool's own torch.load (published digest or the site's allow_unverified_checkpoint)",
}
"""How the tool process loads the checkpoint, by --checkpoint-trust; recorded in provenance."""


def die_with_parent() -> Any:
    """A `preexec_fn`: the tool gets SIGKILL when this driver exits (Linux), so no tool outlives a killed job."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        prctl = None
    parent = os.getpid()

    def preexec() -> None:
        if (
            prctl is not None and prctl(1, 9, 0, 0, 0) == 0 and os.getppid() != parent
        ):  # PR_SET_PDEATHSIG, SIGKILL
            os.kill(os.getpid(), 9)

    return preexec


def allowed_classes(names: list[str]) -> list[Any]:
    """The classes named 'module.Name' that this environment has (a missing one cannot be in a valid file)."""
    found = []
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue
    return found


def weights_only_everywhere(allow: list[str]) -> None:
    """From here on, every torch.load in this process (and its children) is weights-only with `allow`."""
    import torch

    torch.serialization.add_safe_globals(allowed_classes(allow))
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)


def _tensors(value: Any) -> bool:
    import torch

    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _layout_error(tool: str, blob: Any) -> str | None:
    """What is wrong with the loaded object for `tool`'s format, or None."""
    if not isinstance(blob, dict):
        return f"expected a dict, found {type(blob).__name__}"
    if tool == "membrain":
        if not _tensors(blob.get("state_dict")):
            return "not a Lightning checkpoint: no 'state_dict' of named tensors"
        hyper = blob.get("hyper_parameters", {})
        if not isinstance(hyper, Mapping):
            return f"'hyper_parameters' is a {type(hyper).__name__}, not a mapping"
        return None
    if tool == "tardis":
        struct = blob.get("model_struct_dict")
        if not isinstance(struct, dict) or not all(
            isinstance(v, (str, int, float, bool, list, tuple, type(None))) for v in struct.values()
        ):
            return "not a TARDIS checkpoint: no 'model_struct_dict' of plain settings"
        if not _tensors(blob.get("model_state_dict")):
            return "not a TARDIS checkpoint: no 'model_state_dict' of named tensors"
        return None
    return f"unknown tool {tool!r}"


def inspect_checkpoint(tool: str, path: str, allow: list[str]) -> dict[str, Any]:
    """Load `path` weights-only (tensors, plain data, `allow`) and check the tool's layout; never raises."""
    import torch

    try:
        with torch.serialization.safe_globals(allowed_classes(allow)):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means: not a checkpoint we read as data
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [
            type(err).__name__
        ]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])
        reason = reason.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
        return {"ok": False, "error": f"torch.load(weights_only=True) failed: {reason}"}
    problem = _layout_error(tool, blob)
    return {
        "ok": problem is None,
        "error": problem,
        "keys": sorted(map(str, blob)) if isinstance(blob, dict) else [],
    }


def guarded_command(cli: str, args: list[str], allow: list[str]) -> list[str]:
    """A command line that runs the console script `cli` with `args` under weights-only loading."""
    flags = [f"--allow-class={name}" for name in allow]
    return [sys.executable, os.path.abspath(__file__), "exec", *flags, "--", cli, *args]


def main() -> int:
    """`exec [--allow-class C]... -- CLI ARGS...`: run a tool's console script with weights-only loading."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_exec = sub.add_parser("exec")
    p_exec.add_argument("--allow-class", action="append", default=[])
    p_exec.add_argument("cli")
    p_exec.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    weights_only_everywhere(args.allow_class)
    sys.argv = [args.cli, *args.args]
    runpy.run_path(args.cli, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
