"""pyproject.toml installs every source folder: setuptools' automatic discovery cannot map
the folders to ``qforge.*`` names, so the package list is written by hand and this test
keeps it complete."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """The source folder of ``package`` under pyproject's package-dir mapping."""
    mapping = SETUPTOOLS["package-dir"]
    parts = package.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[length:])
    raise AssertionError(f"{package}: no package-dir entry above it")


def _source_folders():
    """Every folder under the top-level packages that holds files (not caches)."""
    for top in SETUPTOOLS["package-dir"].values():
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(
                    child.is_file() for child in folder.iterdir()):
                yield folder


def test_every_source_folder_is_an_installed_package():
    installed = {_folder(package) for package in SETUPTOOLS["packages"]}
    missing = sorted(str(folder.relative_to(ROOT)) for folder in _source_folders()
                     if folder not in installed)
    assert missing == [], f"folders not in pyproject.toml's packages: {missing}"


def test_every_listed_package_exists():
    absent = [package for package in SETUPTOOLS["packages"] if not _folder(package).is_dir()]
    assert absent == []


def test_every_data_file_is_package_data():
    """A non-Python file in a package folder is installed only through package-data."""
    patterns = SETUPTOOLS["package-data"]
    left_out = []
    for package in SETUPTOOLS["packages"]:
        for path in _folder(package).iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc") and not any(
                    fnmatch.fnmatch(path.name, pattern) for pattern in patterns.get(package, [])):
                left_out.append(str(path.relative_to(ROOT)))
    assert left_out == []
