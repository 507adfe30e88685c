"""Helpers the command modules share: option errors, output folders, input files."""

from pathlib import Path

import pytest

from qforge.gen.cli.common import OptionError, make_folder, require_file
from qforge.sim.model.errors import QforgeError


def test_option_error_is_a_user_error():
    assert issubclass(OptionError, QforgeError)


def test_make_folder_creates_or_names_the_option(tmp_path):
    make_folder(tmp_path / "a" / "b", "--plot-dir", tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError) as error:
        make_folder(tmp_path / "file" / "x", "--output", Path("given"))
    assert str(error.value) == f"--output given: {tmp_path / 'file'} is a file, not a folder"


def test_require_file(tmp_path):
    (tmp_path / "there.npy").write_text("")
    require_file(tmp_path / "there.npy", "--a")
    with pytest.raises(OptionError, match=r"^--a .*missing.npy: no such file$"):
        require_file(tmp_path / "missing.npy", "--a")
    with pytest.raises(OptionError, match=r": is a folder, not a file$"):
        require_file(tmp_path)
