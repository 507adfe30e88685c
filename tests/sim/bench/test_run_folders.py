"""Bench runs of the same name in parallel processes get a folder each."""

from pathlib import Path

from qforge.sim.bench.rtl import BuiltDesign, _run_folder


def test_a_held_run_folder_is_not_shared(tmp_path):
    built = BuiltDesign(design=None, simulator="verilator", build_dir=tmp_path, waves=False)
    with _run_folder(built, "scenario") as first:
        # flock locks belong to an open file: a second open of the same lock file, as
        # another process would do, finds it held.
        with _run_folder(built, "scenario") as second:
            assert first == tmp_path / "runs" / "scenario"
            assert second == tmp_path / "runs" / "scenario.1"
    with _run_folder(built, "scenario") as again:
        assert again == first
    assert isinstance(again, Path)
