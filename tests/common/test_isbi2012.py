import numpy as np
import pytest

from common.data import files, isbi2012


def test_fixture_stacks_load_with_binary_labels(isbi_root):
    data = isbi2012.load(str(isbi_root), verify=False)
    assert data.train_images.shape == data.test_images.shape == isbi2012.SHAPE
    assert set(np.unique(data.train_labels).tolist()) == {0, 1} and data.train_labels.mean() == (30 / 32) ** 2


def test_checksum_mismatch_names_the_file_and_the_expected_sum(isbi_root):
    with pytest.raises(files.DataError, match=isbi2012.PIXEL_SHA256["train-volume.tif"]):
        isbi2012.load(str(isbi_root))


def test_missing_file_says_where_to_get_it_and_put_it(tmp_path):
    with pytest.raises(files.DataError, match="train-volume.tif is missing") as err:
        isbi2012.load(str(tmp_path))
    assert isbi2012.PIXEL_SHA256["train-volume.tif"] in str(err.value) and str(tmp_path / "isbi2012") in str(err.value)


def test_corrupt_and_wrong_shape_files_are_refused_and_left_alone(tmp_path):
    import tifffile

    folder = tmp_path / isbi2012.FOLDER
    folder.mkdir()
    (folder / "train-volume.tif").write_bytes(b"II*\x00 truncated")
    with pytest.raises(files.DataError, match="corrupt"):
        isbi2012.load(str(tmp_path))
    assert (folder / "train-volume.tif").read_bytes() == b"II*\x00 truncated"
    tifffile.imwrite(folder / "train-volume.tif", np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(files.DataError, match=r"expected uint8 \(30, 512, 512\)"):
        isbi2012.load(str(tmp_path), verify=False)


def test_real_isbi2012(real_data_dir):
    if not (real_data_dir / isbi2012.FOLDER / "train-volume.tif").exists():
        pytest.skip("isbi2012 not restored in KPB_DATA_DIR")
    data = isbi2012.load(str(real_data_dir))
    assert 0.7 < data.train_labels.mean() < 0.85  # most pixels are cell interior
