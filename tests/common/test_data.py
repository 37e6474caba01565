import gzip
import hashlib
import os
import pickle
import shutil
import tarfile

import keras
import numpy as np
import pytest

from common.data import cifar10, files, frey_face, mnist
from common.data.files import DataError
from common.data.pipeline import ArrayBatches, pad_crop_flip
from tests.conftest import write_cifar_folder, write_frey_face, write_idx_gz, write_mnist_folder

# CIFAR-10 -------------------------------------------------------------------------------------------------

def test_cifar_folder_loads_with_official_counts(cifar_root):
    data = cifar10.load(cifar_root, download=False, verify=False)
    assert data.train.x.shape == (50_000, 32, 32, 3) and data.train.x.dtype == np.uint8
    assert data.test.x.shape == (10_000, 32, 32, 3)
    assert np.bincount(data.train.y).tolist() == [5000] * 10


def test_cifar_pixels_are_read_channel_last(tmp_path):
    folder = write_cifar_folder(tmp_path)
    with open(folder / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    # Image 0: red plane 1, green plane 2, blue plane 3 (the pickles store planes one after another).
    batch[b"data"][0] = np.repeat(np.array([1, 2, 3], np.uint8), 1024)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    x = cifar10.load(tmp_path, download=False, verify=False).test.x[0]
    assert (x[..., 0] == 1).all() and (x[..., 1] == 2).all() and (x[..., 2] == 3).all()


def test_cifar_missing_everything_names_file_checksum_and_place(tmp_path):
    with pytest.raises(files.DataError) as e:
        cifar10.load(tmp_path, download=False, verify=False)
    message = str(e.value)
    assert "cifar-10-python.tar.gz" in message and cifar10.ARCHIVE.md5 in message and str(tmp_path) in message


def test_cifar_missing_batch_in_folder(tmp_path):
    folder = write_cifar_folder(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(files.DataError, match="data_batch_3 is missing"):
        cifar10.load(tmp_path, download=False, verify=False)


def test_cifar_corrupt_batch_is_reported_and_left_alone(tmp_path):
    folder = write_cifar_folder(tmp_path)
    blob = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(files.DataError, match="data_batch_2 is corrupt"):
        cifar10.load(tmp_path, download=True, verify=False)
    assert (folder / "data_batch_2").stat().st_size == len(blob) // 2


def test_cifar_class_imbalance_is_refused(tmp_path):
    folder = write_cifar_folder(tmp_path)
    with open(folder / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch[b"labels"][:10] = [0] * 10
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(files.DataError, match="class counts"):
        cifar10.load(tmp_path, download=False, verify=False)


def _make_archive(src_root, dest_dir):
    dest_dir.mkdir()
    archive = dest_dir / cifar10.ARCHIVE.name
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(src_root / cifar10.FOLDER, arcname=cifar10.FOLDER)
    return archive


def test_cifar_archive_read_in_place_after_md5_check(cifar_root, tmp_path, monkeypatch):
    archive = _make_archive(cifar_root, tmp_path / "a")
    monkeypatch.setattr(cifar10, "ARCHIVE", files.RemoteFile(archive.name, "https://example.invalid/x",
                                                            files.md5sum(archive)))
    data = cifar10.load(archive.parent, download=False, verify=False)
    reference = cifar10.load(cifar_root, download=False, verify=False)
    assert np.array_equal(data.train.x, reference.train.x) and np.array_equal(data.test.y, reference.test.y)


def test_cifar_archive_with_wrong_md5_is_not_replaced(cifar_root, tmp_path):
    archive = _make_archive(cifar_root, tmp_path / "a")
    before = files.md5sum(archive)
    with pytest.raises(files.DataError, match=f"expected {cifar10.ARCHIVE.md5}"):
        cifar10.load(archive.parent, download=True, verify=False)
    assert files.md5sum(archive) == before


def test_download_is_verified_then_renamed(cifar_root, tmp_path, monkeypatch):
    archive = _make_archive(cifar_root, tmp_path / "server")
    spec = files.RemoteFile(archive.name, "https://example.invalid/cifar.tgz", files.md5sum(archive))
    monkeypatch.setattr(cifar10, "ARCHIVE", spec)
    calls = []

    def fake_get_file(fname, origin, cache_dir, cache_subdir):
        calls.append(origin)
        shutil.copyfile(archive, f"{cache_dir}/{fname}")

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    data = cifar10.load(tmp_path / "cache", download=True, verify=False)
    assert calls == [spec.url] and len(data.train) == 50_000
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [spec.name]


def test_bad_download_is_reported_and_removed(tmp_path, monkeypatch):
    spec = files.RemoteFile("f.bin", "https://example.invalid/f.bin", hashlib.md5(b"good").hexdigest())
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda fname, origin, cache_dir, cache_subdir: open(f"{cache_dir}/{fname}", "wb").write(b"bad"))
    with pytest.raises(files.DataError, match="corrupt"):
        files.fetch(spec, tmp_path, download=True, what="test file")
    assert not (tmp_path / "f.bin").exists()


def test_failed_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(**kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: offline())
    with pytest.raises(files.DataError) as e:
        cifar10.load(tmp_path, download=True, verify=False)
    assert "could not download" in str(e.value) and cifar10.ARCHIVE.md5 in str(e.value)
    assert not list(tmp_path.iterdir())


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(files.ENV_VAR, str(tmp_path))
    assert files.data_dir(None) == tmp_path and files.data_dir("/x") == files.Path("/x")
    monkeypatch.delenv(files.ENV_VAR)
    assert files.data_dir(None).parts[-2:] == (".keras", "datasets")


def test_val_split_is_stratified_and_independent_of_file_order(cifar_root):
    train = cifar10.load(cifar_root, download=False, verify=False).train
    rest, val = cifar10.train_val_split(train, 5000)
    assert len(rest) == 45_000 and np.bincount(val.y).tolist() == [500] * 10
    assert not set(val.filenames) & set(rest.filenames)
    shuffled = train.take(np.random.default_rng(1).permutation(len(train)))
    assert set(cifar10.train_val_split(shuffled, 5000)[1].filenames) == set(val.filenames)


# MNIST ----------------------------------------------------------------------------------------------------

def test_mnist_loads_with_official_counts(mnist_root):
    data = mnist.load(mnist_root, download=False, verify=False)
    assert data.x_train.shape == (60_000, 28, 28) and data.x_test.shape == (10_000, 28, 28)
    assert np.bincount(data.y_test).tolist() == mnist.CLASS_COUNTS["test"]


def test_mnist_truncated_file_is_reported(tmp_path):
    folder = write_mnist_folder(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(files.DataError, match="truncated"):
        mnist.load(tmp_path, download=False, verify=False)


def test_mnist_not_gzip_is_reported(tmp_path):
    folder = write_mnist_folder(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(files.DataError, match="train-labels-idx1-ubyte.gz is corrupt"):
        mnist.load(tmp_path, download=False, verify=False)


def test_mnist_missing_file(tmp_path):
    folder = write_mnist_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(files.DataError, match=mnist.FILES["test_labels"].md5):
        mnist.load(tmp_path, download=False, verify=False)


def test_mnist_wrong_class_counts(tmp_path):
    folder = write_mnist_folder(tmp_path)
    write_idx_gz(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10_000, np.uint8))
    with pytest.raises(files.DataError, match="class counts"):
        mnist.load(tmp_path, download=False, verify=False)


# The real files, where CI restored them ----------------------------------------------------------------------

def test_real_cifar10(real_data_dir):
    data = cifar10.load(real_data_dir, download=False)
    mean = data.train.x.reshape(-1, 3).mean(0) / 255
    assert np.allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-4)


def test_real_mnist(real_data_dir):
    data = mnist.load(real_data_dir, download=False)
    assert np.bincount(data.y_test).tolist() == mnist.CLASS_COUNTS["test"]
    # The canonical md5 of the decompressed label file (../shared/data/README.md), rebuilt from the arrays.
    labels = b"\x00\x00\x08\x01" + (10_000).to_bytes(4, "big") + data.y_test.astype(np.uint8).tobytes()
    assert hashlib.md5(labels).hexdigest() == "27ae3e4e09519cfbb04c329615203637"


# Pipeline -------------------------------------------------------------------------------------------------

def _batches(**kw):
    x = np.arange(100 * 4 * 4 * 1, dtype=np.float32).reshape(100, 4, 4, 1)
    return ArrayBatches(x, np.arange(100), 16, seed=3, workers=1, **kw)


def test_batches_are_a_function_of_seed_epoch_and_index():
    a, b = _batches(augment=pad_crop_flip(1)), _batches(augment=pad_crop_flip(1))
    b.set_epoch(4)
    b.set_epoch(2)
    a.set_epoch(2)
    for i in (5, 0, 3):
        assert np.array_equal(a[i][0], b[i][0]) and np.array_equal(a[i][1], b[i][1])
    a.set_epoch(3)
    assert not np.array_equal(a[0][1], b[0][1])


def test_epoch_covers_each_example_once_and_drops_the_remainder():
    ds = _batches()
    assert len(ds) == 6
    seen = np.concatenate([ds[i][1] for i in range(len(ds))])
    assert len(seen) == 96 and len(set(seen.tolist())) == 96


def test_pad_crop_flip_gives_each_image_a_shifted_possibly_mirrored_crop():
    x = np.random.default_rng(0).random((64, 8, 8, 3)).astype(np.float32)
    out = pad_crop_flip(2)(x, np.random.default_rng(0))
    assert out.shape == x.shape
    found = []
    for img, src in zip(out, x, strict=True):
        padded = np.pad(src, ((2, 2), (2, 2), (0, 0)))
        matches = [(flip, dy, dx) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if np.array_equal(img, padded[dy:dy + 8, dx:dx + 8][:, ::-1] if flip
                                     else padded[dy:dy + 8, dx:dx + 8])]
        assert matches, "an output image is not a crop of its padded source"
        found.append(matches[0])
    assert len(set(found)) > 10 and {flip for flip, _, _ in found} == {False, True}


def test_several_passes_per_epoch_and_batches_without_labels():
    x = np.arange(30, dtype=np.float32)[:, None]
    ds = ArrayBatches(x, None, 8, seed=1, workers=1, passes=3)
    assert len(ds) == 11  # 90 examples, the last 2 dropped
    batches = [ds[i] for i in range(len(ds))]
    assert all(isinstance(b, np.ndarray) and b.shape == (8, 1) for b in batches)
    counts = np.bincount(np.concatenate(batches)[:, 0].astype(int), minlength=30)
    assert counts.sum() == 88 and counts.max() == 3 and (counts >= 2).all()
    one = ArrayBatches(x, np.arange(30), 8, seed=1, workers=1)
    assert np.array_equal(one[0][0], ds[0][:8])  # pass 0 is the single-pass shuffle, so old runs resume alike


def test_frey_face_loads_in_file_order_and_splits_the_same_way_everywhere(tmp_path):
    frames = write_frey_face(tmp_path)
    assert np.array_equal(frey_face.load_all(str(tmp_path), download=False), frames)
    a = frey_face.load(str(tmp_path), download=False, verify=False)
    b = frey_face.load(str(tmp_path), download=False, verify=False)
    assert a.x_train.shape == (1600, 28, 20) and a.x_test.shape == (365, 28, 20)
    assert np.array_equal(a.x_test, b.x_test)
    together = np.concatenate([a.x_train, a.x_test]).reshape(1965, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, frames.reshape(1965, -1)))


def test_frey_face_missing_and_corrupt(tmp_path):
    with pytest.raises(files.DataError, match=frey_face.FILE.md5) as err:
        frey_face.load(str(tmp_path), download=False, verify=False)
    assert "frey_rawface.mat" in str(err.value) and frey_face.FILE.url in str(err.value)
    (tmp_path / "frey_rawface.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(files.DataError, match="corrupt"):
        frey_face.load(str(tmp_path), download=False, verify=False)
    assert (tmp_path / "frey_rawface.mat").read_bytes() == b"MATLAB 5.0 MAT-file, truncated"


def test_frey_face_wrong_shape_is_refused(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "frey_rawface.mat", {"ff": np.zeros((560, 100), np.uint8)})
    with pytest.raises(files.DataError, match="560, 1965"):
        frey_face.load(str(tmp_path), download=False, verify=False)


def test_real_frey_face(real_data_dir):
    if not (real_data_dir / frey_face.FILE.name).exists():
        pytest.skip("frey_rawface.mat not restored in KPB_DATA_DIR")
    assert files.md5sum(real_data_dir / frey_face.FILE.name) == frey_face.FILE.md5
    frames = frey_face.load_all(str(real_data_dir), download=False)
    assert frames.shape == (1965, 28, 20) and 140 < frames.mean() < 170


def test_data_that_is_not_the_publishers_is_refused_unless_verification_is_off(cifar_root, mnist_root, tmp_path):
    with pytest.raises(DataError, match="differ from the official release \\(content SHA-256"):
        cifar10.load(cifar_root, download=False)
    with pytest.raises(DataError, match="not the official MNIST data"):
        mnist.load(mnist_root, download=False)
    write_frey_face(tmp_path)
    with pytest.raises(DataError, match="not the publisher's Frey Face file .* expected 5aeb024d"):
        frey_face.load(str(tmp_path), download=False)
    assert frey_face.load(str(tmp_path), download=False, verify=False).x_train.shape[1:] == (28, 20)


def test_a_data_directory_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a directory"):
        mnist.load(str(tmp_path / "file"), download=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file: permissions cannot be tested as root")
def test_an_unreadable_file_is_reported_as_such_not_as_corrupt(mnist_root, tmp_path):
    shutil.copytree(mnist_root, tmp_path / "copy")
    path = next((tmp_path / "copy" / "mnist").glob("train-images*"))
    path.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        mnist.load(str(tmp_path / "copy"), download=False, verify=False)


# Corpora laid out one folder per class (CK+48, URDU, SFEW) ---------------------------------------------------

def test_class_folder_files_sorted_with_their_name_matches_and_one_line_refusals(tmp_path):
    import re

    name = re.compile(r"^S(\d)_(\d)\.png$")
    for path in ("b/S2_1.png", "a/S1_2.png", "a/S1_1.png", "a/notes.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    found = files.class_folder_files(tmp_path, ("a", "b"), "Toy", name, "S<s>_<n>.png", "*.png")
    assert [p.relative_to(tmp_path).as_posix() for p, _ in found] == ["a/S1_1.png", "a/S1_2.png", "b/S2_1.png"]
    assert [m.groups() for _, m in found] == [("1", "1"), ("1", "2"), ("2", "1")]
    assert [m for _, m in files.class_folder_files(tmp_path, ("a", "b"), "Toy", glob="b*")] == []
    with pytest.raises(DataError, match=r"a/notes.txt: not a Toy file name \(S<s>_<n>.png\)"):
        files.class_folder_files(tmp_path, ("a", "b"), "Toy", name, "S<s>_<n>.png")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "S3_1.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"unknown class folder 'c' \(Toy has a, b\)"):
        files.class_folder_files(tmp_path, ("a", "b"), "Toy", name, "S<s>_<n>.png", "*.png")


def test_a_missing_corpus_folder_says_how_to_get_it_in_one_line(tmp_path):
    (tmp_path / "Corpus").mkdir()
    assert files.corpus_folder(str(tmp_path), "Corpus", "unpack it") == tmp_path / "Corpus"
    with pytest.raises(DataError) as e:
        files.corpus_folder(str(tmp_path), "Other", "unpack corpus.zip there")
    assert str(e.value) == (f"{tmp_path / 'Other'} not found: unpack corpus.zip there, or point --data_dir at the "
                            f"folder that holds Other/")
