"""Run every docstring example in the qforge packages as a test.

The modules are imported by their installed names (``qforge.sim.model.numerics``), so each
module exists once and its examples run against the same objects the rest of the
suite uses. Error examples are compared in full, message included.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import qforge.api
import qforge.fpga
import qforge.gen
import qforge.hdl
import qforge.sim

#: The walked packages. qforge.api comes first: its folder gen/api/ lies inside
#: qforge.gen's, and is imported once, by its installed name.
PACKAGES = (qforge.api, qforge.gen, qforge.hdl, qforge.sim, qforge.fpga)


def _walk(name: str, folder: Path, seen: set):
    """``name`` and its modules and subpackages, found from the files without importing
    them (so that no folder is imported under a second name); a folder already walked
    is skipped."""
    folder = folder.resolve()
    if folder in seen:
        return
    seen.add(folder)
    yield name
    for info in pkgutil.iter_modules([str(folder)]):
        if info.ispkg:
            yield from _walk(f"{name}.{info.name}", folder / info.name, seen)
        else:
            yield f"{name}.{info.name}"


def _modules():
    seen = set()
    for package in PACKAGES:
        yield from _walk(package.__name__, Path(package.__path__[0]), seen)


def _is_exception_class(module: str, name: str) -> bool:
    try:
        value = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return isinstance(value, type) and issubclass(value, BaseException)


class ExceptionNameChecker(doctest.OutputChecker):
    """doctest's checker, except that an exception written with its bare class name
    (``EncodingError: message``) matches the traceback's module-qualified name
    (``qforge.sim.model.isa.EncodingError: message``).

    Only a leading ``module.path.`` before the name of an exception class defined in
    that module is dropped; the message and every other output are compared as
    doctest compares them.
    """

    _QUALIFIED = re.compile(r"((?:[A-Za-z_]\w*\.)+)([A-Za-z_]\w*)(?=:|\n|$)")

    def check_output(self, want, got, optionflags):
        if super().check_output(want, got, optionflags):
            return True
        match = self._QUALIFIED.match(got)
        if match and _is_exception_class(match[1][:-1], match[2]):
            return super().check_output(want, got[len(match[1]):], optionflags)
        return False


def test_exception_names_are_compared_without_their_module():
    checker = ExceptionNameChecker()
    got = "qforge.sim.model.errors.QforgeError: bad value\n"
    assert checker.check_output("QforgeError: bad value\n", got, 0)
    assert not checker.check_output("QforgeError: other value\n", got, 0)
    assert not checker.check_output("ConfigError: bad value\n", got, 0)
    # Not an exception class: output is compared as written.
    assert not checker.check_output("Config: x\n", "qforge.sim.model.spec.Config: x\n", 0)


def test_every_package_is_walked_once():
    names = list(_modules())
    assert len(names) == len(set(names))
    assert "qforge.api" in names
    assert not any(name.startswith("qforge.gen.api") for name in names)


@pytest.mark.parametrize("name", sorted(set(_modules())))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(checker=ExceptionNameChecker(),
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
