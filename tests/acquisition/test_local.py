"""Local files: a ground truth whose shape differs from its tomogram stops the import, before any compute."""

from __future__ import annotations

import numpy as np
import pytest

from tomoseg.acquisition.local import check_pair, import_local
from tomoseg.core.errors import InputError
from tomoseg.core.io import write_volume


@pytest.fixture
def pair(tmp_path):
    write_volume(tmp_path / "tomo.mrc", np.zeros((4, 20, 24), np.float32), 10.0)
    write_volume(tmp_path / "truth.mrc", np.zeros((4, 24, 20), np.uint8), 10.0)
    return tmp_path / "tomo.mrc", tmp_path / "truth.mrc"


def test_shape_mismatch_names_both_files(pair):
    tomo, truth = pair
    with pytest.raises(InputError) as err:
        check_pair(tomo, truth)
    message = str(err.value)
    assert message.startswith(f"{truth}: ground truth shape (4, 24, 20) differs from its tomogram {tomo}'s")
    assert "(4, 20, 24)" in message


@pytest.mark.parametrize("binarize", [False, True])
def test_either_import_of_a_mismatched_pair_writes_nothing(tmp_path, pair, binarize):
    tomo, truth = pair
    source, counterpart = (truth, tomo) if binarize else (tomo, truth)
    out = tmp_path / "results" / "x.mrc"
    with pytest.raises(InputError, match="ground truth shape"):
        import_local(source, out, binarize=binarize, counterpart=counterpart)
    assert not out.parent.exists()


def test_voxel_size_mismatch_is_warned_about(tmp_path, caplog):
    write_volume(tmp_path / "tomo.mrc", np.zeros((4, 20, 24), np.float32), 10.0)
    write_volume(tmp_path / "truth.mrc", np.zeros((4, 20, 24), np.uint8), 14.0)
    write_volume(tmp_path / "nohdr.mrc", np.zeros((4, 20, 24), np.uint8), 0.0)
    check_pair(tmp_path / "tomo.mrc", tmp_path / "truth.mrc")
    assert "voxel size (14.0, 14.0, 14.0) A differs" in caplog.text
    caplog.clear()
    check_pair(
        tmp_path / "tomo.mrc", tmp_path / "nohdr.mrc"
    )  # no voxel size in the header: nothing to compare
    assert "differs" not in caplog.text
