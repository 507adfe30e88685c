"""Helpers the command modules share: option errors, output folders, input files."""

from pathlib import Path

import pytest

from qforge.gen.cli.common import (OptionError, make_folder, prepare_output,
                                   remove_empty_folders, require_file)
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


def test_prepare_output_makes_the_folder_and_leaves_no_trace(tmp_path):
    created = prepare_output(tmp_path / "a" / "b" / "c.png", "--plot")
    assert created == [tmp_path / "a", tmp_path / "a" / "b"]
    assert sorted(path.name for path in (tmp_path / "a" / "b").iterdir()) == []
    remove_empty_folders(created)
    assert list(tmp_path.iterdir()) == []


def test_prepare_output_keeps_an_existing_file_as_it_was(tmp_path):
    (tmp_path / "c.npy").write_bytes(b"old")
    assert prepare_output(tmp_path / "c.npy", "-o") == []
    assert (tmp_path / "c.npy").read_bytes() == b"old"


@pytest.mark.parametrize("name, reason", [
    ("x\0y", "cannot create it: embedded null byte"),
    ("n" * 300, "cannot create it: File name too long")])
def test_prepare_output_turns_os_errors_into_one_line(tmp_path, name, reason):
    with pytest.raises(OptionError) as error:
        prepare_output(tmp_path / name, "-o", folder=True)
    assert str(error.value).endswith(f": {reason}")
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_remove_empty_folders_keeps_what_holds_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "kept.txt").write_text("")
    remove_empty_folders([tmp_path / "a", tmp_path / "a" / "b"])
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == ["kept.txt"]
