"""Datasets (``qforge.sim.training.datasets``): a user's ``.npz`` made here is read as
written, every bad file is one error with its exact message, and digits through
:func:`load_dataset` are the arrays of :func:`load_digits_split` and of scikit-learn."""

import io
import re
import zipfile

import numpy as np
import pytest

from qforge.sim.training.config import TrainConfig, TrainConfigError
from qforge.sim.training.data import load_digits_split, training_data
from qforge.sim.training.datasets import Dataset, load_dataset


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def flat_arrays(rng, train=20, test=7, features=5, classes=3):
    return dict(x_train=rng.normal(size=(train, features)).astype(np.float32),
                y_train=rng.integers(0, classes, train).astype(np.int32),
                x_test=rng.normal(size=(test, features)).astype(np.float32),
                y_test=rng.integers(0, classes, test).astype(np.int32))


def test_flat_vectors_are_read_as_written(tmp_path):
    arrays = flat_arrays(np.random.default_rng(1))
    arrays["y_test"][0] = 3          # the largest label is in the test split: 4 classes
    data = load_dataset(f"npz:{save(tmp_path / 'flat.npz', **arrays)}")
    assert (data.classes, data.image_shape, data.name) == (4, None,
                                                           f"npz:{tmp_path / 'flat.npz'}")
    assert data.features == 5
    for name in ("x_train", "y_train", "x_test", "y_test"):
        got, given = getattr(data, name), arrays[name]
        assert got.dtype == (np.float64 if name[0] == "x" else np.int64)
        assert got.shape == given.shape and (got == given.astype(got.dtype)).all()


def test_images_with_channels_are_read_and_flattened_row_major(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    y_train, y_test = np.arange(9) % 2, np.array([1, 0, 1, 1], dtype=np.uint8)
    np.savez_compressed(tmp_path / "images.npz", x_train=x_train, y_train=y_train,
                        x_test=x_test, y_test=y_test)
    data = load_dataset("npz:images.npz", base=tmp_path)      # relative to the config
    assert (data.classes, data.image_shape, data.features) == (2, (6, 5, 3), 90)
    assert data.x_train.dtype == np.float64 and (data.x_train == x_train).all()
    assert (data.x_test == x_test).all() and (data.y_test == [1, 0, 1, 1]).all()
    flat = data.arrays(flat=True)
    for got, images in ((flat[0], x_train), (flat[2], x_test)):
        # Channel fastest, then column, then row, written out element by element.
        for n, row, column, channel in np.ndindex(images.shape):
            assert got[n, (row * 5 + column) * 3 + channel] == images[n, row, column, channel]
    assert [a.shape for a in data.arrays()] == [(9, 6, 5, 3), (9,), (4, 6, 5, 3), (4,)]


def test_images_without_channels_get_one(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random((5, 4, 4))
    path = save(tmp_path / "gray.npz", x_train=x, y_train=[0, 1, 2, 0, 1], x_test=x[:2],
                y_test=[2, 2])
    data = load_dataset(f"npz:{path}")
    assert data.image_shape == (4, 4, 1) and data.x_train.shape == (5, 4, 4, 1)
    assert (data.x_train[..., 0] == x).all() and data.classes == 3


def test_digits_through_load_dataset_are_the_digits_split():
    from sklearn.datasets import load_digits
    digits = load_digits()
    for split_seed, test_fraction in ((0, 0.25), (5, 0.9)):
        data = load_dataset("digits", split_seed=split_seed, test_fraction=test_fraction)
        assert (data.name, data.classes, data.image_shape) == ("digits", 10, (8, 8, 1))
        order = np.random.default_rng(split_seed).permutation(1797)
        test = int(round(1797 * test_fraction))
        expected = (digits.images[order[test:]] / 16, digits.target[order[test:]],
                    digits.images[order[:test]] / 16, digits.target[order[:test]])
        for got, want in zip(data.arrays(), expected):
            assert got.shape[0] == want.shape[0]
            assert (got.reshape(want.shape) == want).all()
        for got, want in zip(data.arrays(flat=True),
                             load_digits_split(split_seed, test_fraction)):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()


def test_training_data_takes_a_dataset(tmp_path):
    arrays = flat_arrays(np.random.default_rng(4))
    arrays["x_train"] = arrays["x_train"].reshape(20, 5, 1, 1)
    arrays["x_test"] = arrays["x_test"].reshape(7, 5, 1, 1)
    data = load_dataset(f"npz:{save(tmp_path / 'd.npz', **arrays)}")
    train = TrainConfig("t", 8, 1, 8, 0.2, 1, (), train_samples=12)
    x_train, y_train, x_test, y_test = training_data(train, data)
    assert x_train.shape == (12, 5) and x_test.shape == (7, 5)
    assert (y_train == arrays["y_train"][:12]).all()
    assert training_data(train, data, flat=False)[0].shape == (12, 5, 1, 1)
    digits = load_dataset("digits")
    for got, want in zip(training_data(TrainConfig("t", 8, 1, 8, 0.2, 1, ()), digits),
                         load_digits_split()):
        assert got.tobytes() == want.tobytes()


def good(rng=None):
    rng = rng or np.random.default_rng(5)
    return dict(x_train=rng.random((6, 3)), y_train=np.array([0, 1, 2, 0, 1, 2]),
                x_test=rng.random((2, 3)), y_test=np.array([1, 0]))


def changed(**changes):
    arrays = good()
    arrays.update(changes)
    return {name: value for name, value in arrays.items() if value is not None}


BAD = [
    (changed(y_test=None),
     "no array 'y_test'; the file holds 'x_test', 'x_train', 'y_train' (a dataset holds "
     "x_train, y_train, x_test and y_test)"),
    (changed(names=np.arange(3)),
     "unexpected array 'names'; a dataset holds exactly x_train, y_train, x_test and "
     "y_test"),
    (changed(x_train=np.array([[1, "a"]] * 6, dtype=object)),
     "x_train has dtype object; inputs must be integers or floating point (not bool, "
     "complex, strings, objects or records)"),
    (changed(x_test=np.ones((2, 3), dtype=complex)),
     "x_test has dtype complex128; inputs must be integers or floating point (not bool, "
     "complex, strings, objects or records)"),
    (changed(x_train=np.ones((6, 3), dtype=bool)),
     "x_train has dtype bool; inputs must be integers or floating point (not bool, "
     "complex, strings, objects or records)"),
    (changed(x_train=np.full((6, 3), "1")),
     "x_train has dtype <U1; inputs must be integers or floating point (not bool, "
     "complex, strings, objects or records)"),
    (changed(x_train=np.zeros(6, dtype=[("a", "f8"), ("b", "f8"), ("c", "f8")])),
     "x_train has dtype [('a', '<f8'), ('b', '<f8'), ('c', '<f8')]; inputs must be "
     "integers or floating point (not bool, complex, strings, objects or records)"),
    (changed(y_train=np.array([0.0, 1, 2, 0, 1, 2])),
     "y_train has dtype float64; labels must be integers (convert with "
     "y.astype(np.int64))"),
    (changed(y_test=np.array([True, False])),
     "y_test has dtype bool; labels must be integers (convert with y.astype(np.int64))"),
    (changed(x_train=np.zeros(6)),
     "x_train has shape 6; inputs are N x F (flat vectors), N x H x W or N x H x W x C "
     "(images)"),
    (changed(x_train=np.float64(3)),
     "x_train has shape () (a single value); inputs are N x F (flat vectors), N x H x W or "
     "N x H x W x C (images)"),
    (changed(x_train=np.zeros((6, 1, 1, 1, 3))),
     "x_train has shape 6 x 1 x 1 x 1 x 3; inputs are N x F (flat vectors), N x H x W or "
     "N x H x W x C (images)"),
    (changed(y_train=np.zeros((6, 1), dtype=int)),
     "y_train has shape 6 x 1; labels are one integer per sample: shape N"),
    (changed(x_train=np.zeros((0, 3)), y_train=np.zeros(0, dtype=int)),
     "x_train holds no samples; each split needs at least one"),
    (changed(x_test=np.zeros((0, 3)), y_test=np.zeros(0, dtype=int)),
     "x_test holds no samples; each split needs at least one"),
    (changed(x_train=np.zeros((6, 0))),
     "x_train has shape 6 x 0; each sample needs at least one value"),
    (changed(x_test=np.zeros((2, 4))),
     "x_test's samples are 4, x_train's 3; both splits need the same sample shape"),
    (changed(x_train=np.zeros((6, 3, 2)), x_test=np.zeros((2, 2, 3))),
     "x_test's samples are 2 x 3, x_train's 3 x 2; both splits need the same sample "
     "shape"),
    (changed(y_train=np.array([0, 1, 2, 0, 1])),
     "y_train holds 5 labels for the 6 samples of x_train; one label per sample"),
    (changed(x_test=np.array([[0.0, 1, 2], [3, np.nan, 5]])),
     "x_test's sample 1 holds a NaN or infinite value (as float64); inputs must be "
     "finite"),
    (changed(x_train=np.array([[0.0, 1, 2]] * 3 + [[0, np.inf, 0]] * 3)),
     "x_train's sample 3 holds a NaN or infinite value (as float64); inputs must be "
     "finite"),
    (changed(x_train=np.array([[0, 1, 2]] * 2 + [[0, -2**53 - 1, 0]] * 4)),
     "x_train's sample 2 holds an integer beyond 2**53 in magnitude, which float64 cannot "
     "hold exactly; scale the data"),
    (changed(y_test=np.array([1, -1])),
     "y_test[1] = -1; labels are class indices 0 .. 1023 (at most 1024 classes)"),
    (changed(y_train=np.array([0, 1, 2, 1024, 1, 2], dtype=np.uint16)),
     "y_train[3] = 1024; labels are class indices 0 .. 1023 (at most 1024 classes)"),
    (changed(y_train=np.zeros(6, dtype=np.int8), y_test=np.zeros(2, dtype=np.uint64)),
     "every label is 0, so classes = largest label + 1 = 1; a classifier needs at least "
     "2 classes"),
]


@pytest.mark.parametrize("arrays, message", BAD, ids=range(len(BAD)))
def test_bad_arrays_are_one_error_each(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    expected = f"run.toml: dataset = 'npz:{path}': {message}"
    with pytest.raises(TrainConfigError, match=f"^{re.escape(expected)}$"):
        load_dataset(f"npz:{path}", source="run.toml")


def forged_npz(path, header: dict, data: bytes = b""):
    """An .npz whose x_train member has ``header`` and ``data`` (any size claimed)."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", stream.getvalue() + data)
        for name, value in good().items():
            if name != "x_train":
                member = io.BytesIO()
                np.save(member, value)
                archive.writestr(f"{name}.npy", member.getvalue())
    return path


def test_the_size_is_checked_from_the_headers_before_reading(tmp_path):
    path = forged_npz(tmp_path / "huge.npz",
                      {"descr": "<f8", "fortran_order": False, "shape": (22369617, 3)})
    values = 22369617 * 3 + 6 + 2 * 3 + 2       # the forged x_train and the others
    expected = (f"config: dataset = 'npz:{path}': the arrays hold {values} values; at "
                f"most 67108864 (2**26) are read (the inputs are trained on as float64: "
                f"512 MiB a copy at the limit)")
    with pytest.raises(TrainConfigError, match=f"^{re.escape(expected)}$"):
        load_dataset(f"npz:{path}")
    assert values == 2**26 + 1
    # One sample less is within the limit: the next check applies.
    path = forged_npz(tmp_path / "short.npz", {"descr": "<f8", "fortran_order": False,
                                               "shape": (22369616, 3)})
    with pytest.raises(TrainConfigError, match="y_train holds 6 labels for the 22369616 "):
        load_dataset(f"npz:{path}")


def test_a_damaged_array_is_one_error(tmp_path):
    path = forged_npz(tmp_path / "damaged.npz",
                      {"descr": "<f8", "fortran_order": False, "shape": (6, 3)}, b"\0" * 8)
    prefix = f"config: dataset = 'npz:{path}': the file is damaged: "
    with pytest.raises(TrainConfigError, match=f"^{re.escape(prefix)}"):
        load_dataset(f"npz:{path}")
    bad_header = tmp_path / "header.npz"
    with zipfile.ZipFile(bad_header, "w") as archive:
        archive.writestr("x_train.npy", b"not an array")
        for name in ("y_train", "x_test", "y_test"):
            archive.writestr(f"{name}.npy", b"")
    with pytest.raises(TrainConfigError, match=re.escape(
            f"config: dataset = 'npz:{bad_header}': x_train: not a readable .npy array: ")):
        load_dataset(f"npz:{bad_header}")


def test_bad_files_and_names_are_one_error_each(tmp_path):
    text = tmp_path / "data.npz"
    text.write_text("x_train = 1\n", encoding="utf-8")
    cases = [
        ("mnist", "run.toml: dataset = 'mnist': allowed are 'digits' and 'npz:PATH' (an "
                  ".npz file holding x_train, y_train, x_test and y_test)"),
        (7, "run.toml: dataset = 7: allowed are 'digits' and 'npz:PATH' (an .npz file "
            "holding x_train, y_train, x_test and y_test)"),
        ("npz:", "run.toml: dataset = 'npz:': the path after 'npz:' is empty"),
        ("npz:a\0b", "run.toml: dataset = 'npz:a\\x00b': a path cannot hold a NUL "
                      "character"),
        (f"npz:{tmp_path / 'none.npz'}",
         f"run.toml: dataset = 'npz:{tmp_path / 'none.npz'}': cannot read the file: No "
         f"such file or directory"),
        (f"npz:{tmp_path}", f"run.toml: dataset = 'npz:{tmp_path}': cannot read the file: "
                            f"not a regular file"),
        (f"npz:{text}", f"run.toml: dataset = 'npz:{text}': not an .npz file "
                        f"(numpy.savez writes one: a zip of .npy arrays): File is not a "
                        f"zip file"),
    ]
    for spec, message in cases:
        with pytest.raises(TrainConfigError, match=f"^{re.escape(message)}$"):
            load_dataset(spec, source="run.toml")


def test_a_long_path_is_shown_by_its_ends(tmp_path):
    folder = tmp_path / ("d" * 240)
    folder.mkdir()
    path = folder / "x.npz"
    with pytest.raises(TrainConfigError) as failure:
        load_dataset(f"npz:{path}")
    assert f"{len(str(path))} characters)': cannot read the file" in str(failure.value)
    assert len(str(failure.value)) < 150


def test_a_dataset_is_frozen():
    data = Dataset("d", np.zeros((1, 1)), np.zeros(1, dtype=np.int64), np.zeros((1, 1)),
                   np.zeros(1, dtype=np.int64), 2, None)
    with pytest.raises(AttributeError):
        data.classes = 3
