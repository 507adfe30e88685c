"""The datasets a training run can learn: scikit-learn's digits (the default, shipped with
scikit-learn, no download) and a user's own ``.npz`` file (``dataset = "npz:PATH"``).

A :class:`Dataset` holds a training and a test split:

* **inputs** ``x_train``, ``x_test``: float64, either images ``N x H x W x C`` (an
  ``.npz`` with ``N x H x W`` arrays gets ``C = 1``; :attr:`Dataset.image_shape` is
  ``(H, W, C)``) or flat vectors ``N x F`` (:attr:`Dataset.image_shape` is ``None``). The
  values are used **as given** (converted to float64, never rescaled): digits' pixels are
  divided by 16 into ``[0, 1]``, and a user's data should be scaled the same way (the
  learning rates of ``gen/train`` are tuned for inputs in ``[0, 1]``; the operand formats
  scale each tensor by its own largest magnitude, so any finite range is representable).
* **labels** ``y_train``, ``y_test``: int64 vectors of ``N`` class indices ``0 ..
  classes - 1``, ``classes`` being the largest label of both splits plus one.

:func:`load_dataset` reads a dataset from its name in a training config. An ``.npz`` is
checked before anything is trained on it: every mistake (a missing or unexpected array,
a dtype, a shape, an empty split, a NaN, a label out of range, a file too large) is one
:class:`~qforge.sim.training.config.TrainConfigError` naming the dataset, the array and
what is allowed.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qforge.sim.model.errors import InputError, shown, shown_path
from qforge.sim.training.config import TrainConfigError, split_sizes

__all__ = ["Dataset", "ARRAY_NAMES", "MAX_DATASET_VALUES", "MAX_CLASSES", "load_dataset",
           "train_dataset", "digits_dataset", "npz_dataset"]

#: The arrays of a dataset ``.npz``, in the order :meth:`Dataset.arrays` returns them.
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
#: At most this many values in the four arrays together (2**26: MNIST's 70000 x 28 x 28 =
#: 54.9 million fit, CIFAR-10's 60000 x 32 x 32 x 3 = 184 million do not). The inputs are
#: converted to float64 and training keeps a few copies of them (the bias column, a
#: float32 copy, the quantized operands), so the limit keeps one copy at 512 MiB and a
#: run within a few GiB; the emulated GEMMs would take hours per epoch beyond it anyway.
#: It is checked from the arrays' headers, before anything is read.
MAX_DATASET_VALUES = 1 << 26
#: At most this many classes (ImageNet's 1000 fit): the output layer and the one-hot
#: targets grow with it, and a stray large label would otherwise make millions.
MAX_CLASSES = 1024
#: Integer inputs must be exact in float64 (``|x| <= 2**53``).
_EXACT_INTEGERS = 1 << 53
#: Input dtype kinds accepted: signed and unsigned integers, floating point.
_INPUT_KINDS = "iuf"
#: Label dtype kinds accepted: signed and unsigned integers.
_LABEL_KINDS = "iu"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training and a test split (module docstring: shapes, dtypes, value ranges).

    ``x_train`` is ``N x H x W x C`` (images) or ``N x F`` (flat), float64; ``y_train``
    its ``N`` int64 labels in ``0 .. classes - 1``; ``x_test``, ``y_test`` likewise with
    the same sample shape. ``image_shape`` is ``(H, W, C)`` or ``None`` for flat vectors.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    image_shape: tuple[int, int, int] | None

    @property
    def features(self) -> int:
        """The values of one sample (``H * W * C`` or ``F``)."""
        return math.prod(self.x_train.shape[1:])

    def arrays(self, flat: bool = False):
        """``(x_train, y_train, x_test, y_test)``; with ``flat``, images become ``N x (H *
        W * C)`` vectors, row-major (channel fastest, then column, then row), as the MLP
        reads them.

        >>> d = Dataset("d", np.zeros((3, 2, 2, 1)), np.array([0, 1, 0]),
        ...             np.zeros((1, 2, 2, 1)), np.array([1]), 2, (2, 2, 1))
        >>> [a.shape for a in d.arrays(flat=True)]
        [(3, 4), (3,), (1, 4), (1,)]
        """
        x_train, x_test = self.x_train, self.x_test
        if flat:
            x_train = x_train.reshape(len(x_train), -1)
            x_test = x_test.reshape(len(x_test), -1)
        return x_train, self.y_train, x_test, self.y_test


_DIGITS_CACHE: dict = {}


def digits_dataset(split_seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's digits (1797 images ``8 x 8 x 1``, 10 classes; shipped with
    scikit-learn, no download), pixels divided by 16 into ``[0, 1]``, split by a
    permutation from ``numpy.random.default_rng(split_seed)``: the test set is the first
    ``round(1797 * test_fraction)`` permuted samples
    (:func:`~qforge.sim.training.config.split_sizes`), the training set the rest in
    permuted order. Without scikit-learn: an :class:`InputError`."""
    if "digits" not in _DIGITS_CACHE:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise InputError("dataset = 'digits': needs scikit-learn (its digits ship with "
                             "the package); install it with `pip install -e '.[dev]'`") \
                from None
        digits = load_digits()
        # digits.data row i is image i row-major, so this reshape is digits.images / 16.
        _DIGITS_CACHE["digits"] = (digits.data.reshape(-1, 8, 8, 1) / 16.0,
                                   digits.target.astype(np.int64))
    x, y = _DIGITS_CACHE["digits"]
    order = np.random.default_rng(split_seed).permutation(len(x))
    _, test = split_sizes(test_fraction, len(x))
    return Dataset("digits", x[order[test:]], y[order[test:]], x[order[:test]],
                   y[order[:test]], 10, (8, 8, 1))


def load_dataset(spec: str, *, split_seed: int = 0, test_fraction: float = 0.25,
                 base: str | Path | None = None, source: str = "config") -> Dataset:
    """The dataset a training config names: ``"digits"`` (:func:`digits_dataset` with
    ``split_seed`` and ``test_fraction``) or ``"npz:PATH"`` (:func:`npz_dataset`; the
    file holds its own split, so ``split_seed`` and ``test_fraction`` do not apply).
    A relative ``PATH`` is taken from ``base`` (the config file's folder) when given,
    else from the current directory. Errors start with ``source`` (the config's path).

    >>> load_dataset("mnist")
    Traceback (most recent call last):
    ...
    qforge.sim.training.config.TrainConfigError: config: dataset = 'mnist': allowed are 'digits' and 'npz:PATH' (an .npz file holding x_train, y_train, x_test and y_test)
    """
    if spec == "digits":
        return digits_dataset(split_seed, test_fraction)
    if not isinstance(spec, str) or not spec.startswith("npz:"):
        raise TrainConfigError(f"{source}: dataset = {shown(spec)}: allowed are 'digits' "
                               f"and 'npz:PATH' (an .npz file holding "
                               f"{_listed(ARRAY_NAMES)})")
    if spec == "npz:":
        raise TrainConfigError(f"{source}: dataset = 'npz:': the path after 'npz:' is "
                               f"empty")
    if "\0" in spec:     # no file name holds one; the OS calls would raise ValueError
        raise TrainConfigError(f"{source}: dataset = {shown(spec)}: a path cannot hold a "
                               f"NUL character")
    path = Path(spec[len("npz:"):])
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return npz_dataset(path, source=source)


def train_dataset(train) -> Dataset:
    """The dataset of a :class:`~qforge.sim.training.config.TrainConfig` ``train``: its
    ``dataset``, split, folder and source passed to :func:`load_dataset`."""
    return load_dataset(train.dataset, split_seed=train.split_seed,
                        test_fraction=train.test_fraction, base=train.dataset_base,
                        source=train.source)


def npz_dataset(path: str | Path, *, source: str = "config") -> Dataset:
    """The dataset in the ``.npz`` file ``path`` (as ``numpy.savez`` or
    ``numpy.savez_compressed`` write it) holding exactly the arrays
    :data:`ARRAY_NAMES`, checked in this order, each failure one
    :class:`TrainConfigError` starting ``SOURCE: dataset = 'npz:PATH': ``:

    1. the file: readable, a regular file, a zip of ``.npy`` arrays; no array missing,
       none other;
    2. each array's header (before its data is read): inputs of an integer or floating
       point dtype (not bool, complex, strings, objects or records), labels of an integer
       dtype; inputs 2-D (``N x F``), 3-D (``N x H x W``) or 4-D (``N x H x W x C``),
       labels 1-D; at least one sample per split and one value per sample;
    3. the shapes together: at most :data:`MAX_DATASET_VALUES` values in all, the same
       sample shape in both splits (``N x H x W`` counting as ``N x H x W x 1``), one
       label per sample;
    4. the values: inputs finite (integer inputs at most ``2**53`` in magnitude, exact in
       float64); labels ``>= 0`` and below :data:`MAX_CLASSES`; ``classes`` (the largest
       label plus one) at least 2.

    Inputs become float64 and ``N x H x W`` images ``N x H x W x 1``; labels become int64.
    """
    path = Path(path)
    where = f"{source}: dataset = 'npz:{shown_path(path)}'"
    headers = _npz_headers(path, where)
    x_train, y_train, x_test, y_test = (headers[name] for name in ARRAY_NAMES)
    for name in ARRAY_NAMES:
        _check_header(name, *headers[name], where)
    values = sum(math.prod(shape) for shape, _ in headers.values())
    if values > MAX_DATASET_VALUES:
        raise TrainConfigError(f"{where}: the arrays hold {values} values; at most "
                               f"{MAX_DATASET_VALUES} (2**26) are read (the inputs are "
                               f"trained on as float64: 512 MiB a copy at the limit)")
    train_sample, test_sample = _sample_shape(x_train[0]), _sample_shape(x_test[0])
    if train_sample != test_sample:
        raise TrainConfigError(f"{where}: x_test's samples are {_shape(x_test[0][1:])}, "
                               f"x_train's {_shape(x_train[0][1:])}; both splits need the "
                               f"same sample shape")
    for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
        samples, labels = headers[x_name][0][0], headers[y_name][0][0]
        if samples != labels:
            raise TrainConfigError(f"{where}: {y_name} holds {labels} labels for the "
                                   f"{samples} samples of {x_name}; one label per sample")
    arrays = _read_arrays(path, where)
    x_train, x_test = (_inputs(name, arrays[name], where) for name in ("x_train", "x_test"))
    for name in ("y_train", "y_test"):
        _check_labels(name, arrays[name], where)
    y_train, y_test = (arrays[name].astype(np.int64) for name in ("y_train", "y_test"))
    classes = int(max(y_train.max(), y_test.max())) + 1
    if classes < 2:
        raise TrainConfigError(f"{where}: every label is 0, so classes = largest label + 1 "
                               f"= 1; a classifier needs at least 2 classes")
    image_shape = train_sample if len(train_sample) == 3 else None
    return Dataset(f"npz:{path}", x_train.reshape(len(x_train), *train_sample), y_train,
                   x_test.reshape(len(x_test), *train_sample), y_test, classes, image_shape)


def _listed(names) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1]


def _shape(shape) -> str:
    return " x ".join(str(size) for size in shape) if shape else "() (a single value)"


def _sample_shape(shape: tuple) -> tuple:
    """A sample's shape, ``H x W`` images counted as ``H x W x 1``."""
    return tuple(shape[1:]) + ((1,) if len(shape) == 3 else ())


def _npz_headers(path: Path, where: str) -> dict:
    """``{name: (shape, dtype)}`` of the four arrays, from the ``.npy`` headers in the zip
    (no array data is read, so a huge or bomb-like file costs nothing)."""
    try:
        if path.exists() and not path.is_file():
            raise TrainConfigError(f"{where}: cannot read the file: not a regular file")
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = [name for name in ARRAY_NAMES if name not in members]
            if missing:
                present = ", ".join(repr(name) for name in sorted(members)) or "no arrays"
                raise TrainConfigError(f"{where}: no array {missing[0]!r}; the file holds "
                                       f"{present} (a dataset holds "
                                       f"{_listed(ARRAY_NAMES)})")
            extra = sorted(set(members) - set(ARRAY_NAMES))
            if extra:
                raise TrainConfigError(f"{where}: unexpected array {shown(extra[0])}; a "
                                       f"dataset holds exactly {_listed(ARRAY_NAMES)}")
            return {name: _npy_header(archive, members[name], name, where)
                    for name in ARRAY_NAMES}
    except OSError as failure:
        raise TrainConfigError(f"{where}: cannot read the file: "
                               f"{failure.strerror or failure}") from None
    except zipfile.BadZipFile as failure:
        raise TrainConfigError(f"{where}: not an .npz file (numpy.savez writes one: a zip "
                               f"of .npy arrays): {failure}") from None


def _npy_header(archive: zipfile.ZipFile, member: str, name: str, where: str):
    with archive.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f"format version {version} (numpy.savez writes 1.0 or "
                                 f"2.0 for numeric arrays)")
            shape, _, dtype = read(stream)
        except ValueError as failure:
            raise TrainConfigError(f"{where}: {name}: not a readable .npy array: "
                                   f"{failure}") from None
    return tuple(shape), dtype


def _check_header(name: str, shape: tuple, dtype: np.dtype, where: str):
    """Step 2 of :func:`npz_dataset` for one array."""
    is_input = name.startswith("x")
    kinds = _INPUT_KINDS if is_input else _LABEL_KINDS
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in kinds:
        allowed = ("inputs must be integers or floating point (not bool, complex, strings, "
                   "objects or records)" if is_input else
                   "labels must be integers (convert with y.astype(np.int64))")
        raise TrainConfigError(f"{where}: {name} has dtype {dtype}; {allowed}")
    if is_input and len(shape) not in (2, 3, 4):
        raise TrainConfigError(f"{where}: {name} has shape {_shape(shape)}; inputs are "
                               f"N x F (flat vectors), N x H x W or N x H x W x C (images)")
    if not is_input and len(shape) != 1:
        raise TrainConfigError(f"{where}: {name} has shape {_shape(shape)}; labels are one "
                               f"integer per sample: shape N")
    if shape[0] == 0:
        raise TrainConfigError(f"{where}: {name} holds no samples; each split needs at "
                               f"least one")
    if is_input and math.prod(shape[1:]) == 0:
        raise TrainConfigError(f"{where}: {name} has shape {_shape(shape)}; each sample "
                               f"needs at least one value")


def _read_arrays(path: Path, where: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in ARRAY_NAMES}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as failure:
        raise TrainConfigError(f"{where}: the file is damaged: {failure}") from None


def _inputs(name: str, x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as float64 after step 4's checks of inputs."""
    if x.dtype.kind in "iu":
        rows = x.reshape(len(x), -1)
        too_large = (np.flatnonzero((rows > _EXACT_INTEGERS).any(axis=1)
                                    | (rows < -_EXACT_INTEGERS).any(axis=1))
                     if x.dtype.itemsize == 8 else [])
        if len(too_large):
            raise TrainConfigError(f"{where}: {name}'s sample {too_large[0]} holds an "
                                   f"integer beyond 2**53 in magnitude, which float64 "
                                   f"cannot hold exactly; scale the data")
    values = x.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad):
        raise TrainConfigError(f"{where}: {name}'s sample {bad[0]} holds a NaN or infinite "
                               f"value (as float64); inputs must be finite")
    return values


def _check_labels(name: str, y: np.ndarray, where: str):
    """Step 4 of :func:`npz_dataset` for one label vector."""
    outside = np.flatnonzero((y < 0) | (y >= MAX_CLASSES))
    if len(outside):
        sample = outside[0]
        raise TrainConfigError(f"{where}: {name}[{sample}] = {y[sample]}; labels are class "
                               f"indices 0 .. {MAX_CLASSES - 1} (at most {MAX_CLASSES} "
                               f"classes)")
