"""Fetching the published ETSAM checkpoints from Zenodo (record 17571925), resumable, with sha256 recorded."""

from __future__ import annotations

import logging
from pathlib import Path

from tomoseg.core.io import InputError, sha256sum, write_json

log = logging.getLogger(__name__)

ZENODO_RECORD = "17571925"
WEIGHT_FILES = ("etsam_stage1_v1.pt", "etsam_stage2_v1.pt")


ZENODO = "https://zenodo.org"


def weight_url(name: str, record: str = ZENODO_RECORD, base: str = ZENODO) -> str:
    """Download address of one file of the Zenodo record."""
    return f"{base}/records/{record}/files/{name}?download=1"


def _download(url: str, dest: Path, timeout: float) -> None:
    """Download `url` to `dest`, resuming a `.part` file left by an interrupted run."""
    import requests

    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    with requests.get(url, headers=headers, stream=True, timeout=(timeout, 60)) as r:
        if r.status_code == 416:  # the part file is already complete
            part.replace(dest)
            return
        r.raise_for_status()
        mode = "ab" if done and r.status_code == 206 else "wb"
        if mode == "wb" and done:
            log.info("%s: server ignored the resume request; downloading from the start", dest.name)
        with open(part, mode) as fh:
            for block in r.iter_content(1 << 20):
                fh.write(block)
    part.replace(dest)


def fetch_weights(
    out_dir: Path, record: str = ZENODO_RECORD, connect_timeout: float = 5.0, base: str = ZENODO
) -> dict[str, str]:
    """Fetch both checkpoints into `out_dir` (skipping present ones), write `weights.json` with their sha256."""
    import requests

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    where = (
        f"download {', '.join(WEIGHT_FILES)} from https://zenodo.org/records/{record} by hand and put them in "
        f"{out_dir}/ (or give their paths with --stage1-checkpoint/--stage2-checkpoint, or etsam.stage1_checkpoint/"
        "etsam.stage2_checkpoint in the workflow config)"
    )
    sums = {}
    for name in WEIGHT_FILES:
        dest = out_dir / name
        if not dest.is_file():
            try:
                log.info("fetching %s", weight_url(name, record, base))
                _download(weight_url(name, record, base), dest, connect_timeout)
            except requests.RequestException as err:
                raise InputError(f"{dest}: cannot download ({type(err).__name__}); {where}") from None
        sums[name] = sha256sum(dest)
        log.info("%s sha256 %s", dest, sums[name])
    write_json(out_dir / "weights.json", {"zenodo_record": record, "sha256": sums})
    log.info("wrote %s", out_dir / "weights.json")
    return sums
