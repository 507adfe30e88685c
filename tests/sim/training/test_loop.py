"""The emulated training loop (``qforge.sim.training.loop``): a short run that learns and
is reproducible, and parallel workers that give the same results."""

from qforge.sim.training.config import train_config_from_dict
from qforge.sim.training.loop import train_all, train_run
from tests.sim.training.small import SMALL


def test_short_training_run_learns_and_is_reproducible():
    train = train_config_from_dict(SMALL)
    report = train_all(train)
    for run in report["runs"]:
        assert run["test_accuracy"][0] < 0.3                  # chance is 0.1
        assert run["test_accuracy"][-1] > 0.6, run["name"]
        assert len(run["test_accuracy"]) == 3 and len(run["train_loss"]) == 3
    low = report["runs"][1]
    assert low["gemms"] == 2 * 25 * 5 + 3 * 2 and low["float64_fallbacks"] == 0
    assert 0 <= low["small_update_fraction"] <= 1 and 0 < low["changed_fraction"] <= 1
    assert 0 <= low["small_update_mass"] <= 1
    again = train_run(train, train.hardware[1])
    assert again.test_accuracy == low["test_accuracy"]
    assert again.train_loss[1:] == low["train_loss"][1:]


def test_parallel_workers_give_the_same_results():
    train = train_config_from_dict(dict(SMALL, epochs=1, train_samples=160))
    serial = train_all(train)
    parallel = train_all(train, jobs=2)
    for one, two in zip(serial["runs"], parallel["runs"]):
        assert one["test_accuracy"] == two["test_accuracy"]
        assert one["test_loss"] == two["test_loss"]


def test_cnn_runs_in_parallel_workers_give_the_same_results():
    from tests.sim.training.test_cnn import TINY
    train = train_config_from_dict(dict(TINY, train_samples=16))
    serial, parallel = train_all(train), train_all(train, jobs=2)
    assert serial["runs"] and serial["model"] == "cnn"
    for one, two in zip(serial["runs"], parallel["runs"]):
        assert one["test_loss"] == two["test_loss"]
        assert one["layer_cycles"] == two["layer_cycles"]


def test_cnn_backend_needs_hardware_updates():
    import pytest

    from qforge.sim.training.config import TrainConfigError
    from tests.sim.training.test_cnn import TINY
    train = train_config_from_dict(dict(TINY, train_samples=16))
    with pytest.raises(TrainConfigError, match="update the weights on the host"):
        train_all(train, backend="golden")


def test_mlp_trains_on_vectors_from_an_npz(tmp_path):
    import numpy as np
    rng = np.random.default_rng(3)
    x = rng.random((60, 20))
    y = (x[:, 0] > 0.5).astype(np.int64) + 2 * (x[:, 1] > 0.5)     # 4 classes
    np.savez(tmp_path / "vectors.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:],
             y_test=y[40:])
    spec = dict(SMALL, dataset=f"npz:{tmp_path / 'vectors.npz'}", train_samples=None,
                epochs=1)
    report = train_all(train_config_from_dict(spec))
    assert (report["features"], report["classes"], report["train_samples"]) == (20, 4, 40)
    assert report["image"] is None and len(report["runs"]) == 3
