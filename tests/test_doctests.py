"""Run every docstring example in the qforge packages as a test.

The modules are imported by their installed names (``qforge.sim.model.numerics``), so each
module exists once and its examples run against the same objects the rest of the
suite uses.
"""

import doctest
import importlib
import pkgutil

import pytest

import qforge.gen
import qforge.fpga
import qforge.hdl
import qforge.sim


def _modules():
    for package in (qforge.gen, qforge.hdl, qforge.sim, qforge.fpga):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            yield info.name


@pytest.mark.parametrize("name", sorted(set(_modules())))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS
                             | doctest.IGNORE_EXCEPTION_DETAIL | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
