"""Fuzzing the commands that read MRC files with random and mutated headers and bodies (issue 13).

Every case must end in success (exit 0, the output written) or the one-line error (exit 2, one
`tomoseg <command>: error:` line, nothing under the output's final name and no temporary file left) —
never an exception escaping the command line, another exit status, or a hang (each command gets
HANG_S seconds).

The cases are derived deterministically (hypothesis, derandomized) so that CI is reproducible; set
TOMOSEG_FUZZ_EXAMPLES to run more, and TOMOSEG_FUZZ_RANDOM=1 for fresh random cases. Each test records
how many cases and command runs it made (`record_property`, and the log).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tomoseg.cli as cli
from tomoseg.core.io import write_volume

log = logging.getLogger(__name__)

SHAPE = (4, 20, 24)  # Z, Y, X: slices large enough for ETSAM (16 px), small enough to be fast
HANG_S = 30
EXAMPLES = int(os.environ.get("TOMOSEG_FUZZ_EXAMPLES", "1500"))
SEGMENT_EXAMPLES = int(os.environ.get("TOMOSEG_FUZZ_SEGMENT_EXAMPLES", "6"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("TOMOSEG_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

# (offset, struct format) of the MRC2014 header words worth breaking: sizes, mode, starts, sampling, cell,
# axis order, statistics, space group, extended header size and type, version, origin, stamp, rms, labels.
HEADER_WORDS = [
    (0, "<i"), (4, "<i"), (8, "<i"), (12, "<i"), (16, "<i"), (20, "<i"), (24, "<i"), (28, "<i"), (32, "<i"),
    (36, "<i"), (40, "<f"), (44, "<f"), (48, "<f"), (64, "<i"), (68, "<i"), (72, "<i"), (76, "<f"),
    (80, "<f"), (84, "<f"), (88, "<i"), (92, "<i"), (104, "4s"), (108, "<i"), (196, "<f"), (208, "4s"),
    (212, "4s"), (216, "<f"), (220, "<i"),
]  # fmt: skip
INTS = st.sampled_from([0, 1, 2, 3, 4, 6, 12, 16, 20, 24, 101, 1024, -1, -(2**31), 2**31 - 1, 2**20])
FLOATS = st.sampled_from([0.0, -1.0, 1.0, 13.48, float("nan"), float("inf"), -float("inf"), 1e38, 1e-38])
STAMPS = st.sampled_from([b"MAP ", b"\x00\x00\x00\x00", b"PAM ", b"DA\x00\x00", b"\x11\x11\x00\x00", b"<htm"])


def _word(offset: int, fmt: str):
    values = STAMPS if fmt == "4s" else INTS if fmt == "<i" else FLOATS
    return values.map(lambda v: ("word", offset, fmt, v))


MUTATION = st.one_of(
    st.one_of(*[_word(o, f) for o, f in HEADER_WORDS]),
    st.tuples(st.just("bytes"), st.integers(0, 2200), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("truncate"), st.integers(0, 1024 + 4 * 20 * 24 * 4)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=256)),
    st.tuples(st.just("special"), st.integers(0, 4 * 20 * 24 - 1), FLOATS),
)
CASE = st.one_of(
    st.tuples(st.sampled_from(["tomogram", "mask", "logits"]), st.lists(MUTATION, min_size=1, max_size=4)),
    st.tuples(st.just("random"), st.binary(min_size=0, max_size=3000)),
)


@functools.lru_cache(maxsize=1)
def _base() -> dict[str, bytes]:
    """Valid MRC files the mutations start from: a float tomogram, an int8 mask, float logits."""
    with tempfile.TemporaryDirectory() as tmp:
        return _base_files(Path(tmp))


def _base_files(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    volumes = {
        "tomogram": rng.normal(size=SHAPE).astype(np.float32),
        "mask": (rng.random(SHAPE) > 0.6).astype(np.uint8),
        "logits": rng.normal(scale=3, size=SHAPE).astype(np.float32),
    }
    files = {}
    for name, volume in volumes.items():
        write_volume(folder / f"{name}.mrc", volume, 10.0)
        files[name] = (folder / f"{name}.mrc").read_bytes()
    return files


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, *args in mutations:
        if kind == "word":
            offset, fmt, value = args
            buf[offset : offset + 4] = struct.pack(fmt, value)
        elif kind == "bytes":
            offset, payload = args
            buf[offset : offset + len(payload)] = payload
        elif kind == "truncate":
            del buf[args[0] :]
        elif kind == "append":
            buf += args[0]
        elif kind == "special" and len(buf) >= 1024 + 4 * (args[0] + 1):
            at = 1024 + 4 * args[0]
            buf[at : at + 4] = struct.pack("<f", args[1])
    return bytes(buf)


def _on_alarm(signum, frame):
    raise TimeoutError(f"a command ran longer than {HANG_S} s on a fuzzed file (hang)")


def _must_refuse(path: Path) -> str | None:
    """Why a command must not succeed on this file, judged independently (complex or non-finite data), or None."""
    import warnings

    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=True) as mrc:
                data = None if mrc.data is None else np.asarray(mrc.data)
    except Exception:  # noqa: BLE001 - unreadable: the command decides, any outcome of 0 or 2 is checked
        return None
    if data is None:
        return None
    if np.iscomplexobj(data):
        return "complex-valued data"
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        return "NaN or inf values"
    return None


def _run_command(capsys, args: list, output: Path, outcomes: Counter, fuzzed: Path | None = None) -> None:
    """One command on a fuzzed file: success with its output, or the one-line error and nothing left."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_S)
    try:
        code = cli.main([str(a) for a in args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    command = str(args[0])
    outcomes[(command, code)] += 1
    assert "Traceback" not in err, err
    assert code in (0, 2), f"exit {code}: {err}"
    leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left: {leftovers}"
    if code == 0:
        assert output.exists(), f"{command} succeeded without writing {output}"
        refuse = _must_refuse(fuzzed) if fuzzed is not None else None
        assert refuse is None, f"{command} accepted a file with {refuse}"
    else:
        lines = [line for line in err.splitlines() if line.startswith(f"tomoseg {command}: error: ")]
        assert len(lines) == 1, err
        assert not output.exists(), f"{command} failed but left {output}"


@pytest.fixture(scope="module")
def outcomes(request):
    counts: Counter = Counter()
    yield counts
    cases = {key: counts.pop(key) for key in list(counts) if isinstance(key, str)}
    log.warning("MRC fuzzing: cases %s, %d command runs: %s", cases, sum(counts.values()), dict(counts))


def _commands(fuzzed: Path, good: Path, out: Path) -> dict[str, tuple[list, Path]]:
    """Each command that reads an MRC file, with the fuzzed file in each place it reads one."""
    return {
        "normalize": (["normalize", fuzzed, "--out", out / "n.mrc"], out / "n.mrc"),
        "postprocess": (["postprocess", fuzzed, "--out", out / "p.mrc", "--min-slices", "2"], out / "p.mrc"),
        "evaluate-pred": (["evaluate", "--pred", fuzzed, "--truth", good, "--json", out / "e.json"], out / "e.json"),
        "evaluate-truth": (["evaluate", "--pred", good, "--truth", fuzzed, "--json", out / "e.json"], out / "e.json"),
        "evaluate-scores": (
            ["evaluate", "--pred", good, "--truth", good, "--json", out / "e.json", "--scores", fuzzed,
             "--score-kind", "etsam-logits"],
            out / "e.json",
        ),
    }  # fmt: skip


# evaluate --scores costs ~0.5 s a call whatever the volume (its fixed histogram), the others ~0.02-0.06 s:
# it gets one case in 13, so that the test stays near a minute.
COMMANDS = ("normalize", "postprocess", "evaluate-pred", "evaluate-truth") * 3 + ("evaluate-scores",)


@pytest.mark.slow
@FUZZ
@given(case=CASE, command=st.sampled_from(COMMANDS))
def test_commands_that_read_mrc_survive_fuzzed_files(capsys, outcomes, record_property, case, command):
    base = _base()
    kind, detail = case
    data = detail if kind == "random" else _mutate(base[kind], detail)
    outcomes["cases: readers"] += 1
    record_property("fuzz_cases", outcomes["cases: readers"])
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        fuzzed, good, out = d / "fuzzed.mrc", d / "mask.mrc", d / "out"
        fuzzed.write_bytes(data)
        good.write_bytes(base["mask"])
        out.mkdir()
        args, output = _commands(fuzzed, good, out)[command]
        _run_command(capsys, args, output, outcomes, fuzzed)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from tomoseg.etsam.model import make_test_checkpoints

    torch.set_num_threads(2)
    return make_test_checkpoints(tmp_path_factory.mktemp("ckpt"), 64)


@settings(FUZZ, max_examples=SEGMENT_EXAMPLES)
@given(case=CASE)
def test_segment_survives_fuzzed_files(capsys, checkpoints, outcomes, record_property, case):
    base = _base()
    kind, detail = case
    data = detail if kind == "random" else _mutate(base[kind], detail)
    outcomes["cases: segment"] += 1
    record_property("fuzz_cases", outcomes["cases: segment"])
    s1, s2 = checkpoints
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        fuzzed, out = d / "fuzzed.mrc", d / "out"
        fuzzed.write_bytes(data)
        args = ["segment", fuzzed, "--out", out, "--stage1-checkpoint", s1, "--stage2-checkpoint", s2]
        out.mkdir()
        _run_command(capsys, [*args, "--device", "cpu", "--no-progress"], out / "mask.mrc", outcomes, fuzzed)
