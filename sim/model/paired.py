"""The paired precision mode (SPARQ, arXiv 2105.11010; DAA, IEEE CAL 2023): two
multiply-accumulates share one PE's block multipliers, and a value-based controller
decides which of them gets the bits. The rule, defined once here (docs/NUMERICS.md,
"Paired mode"):

* The reduction dimension is walked in pairs ``(k, k+1)``; a missing ``k+1`` (odd depth)
  counts as zero. The pair's two MACs share the PE's lanes for one slot.
* The controller looks at the pair's A operands (activations) only. If one is zero, the
  other MAC runs with all its blocks (exact). If both are non-zero, each A operand is
  reduced to a window of its leading blocks (:func:`window_value`): **symmetric**, both
  keep ``L`` blocks (SPARQ); **asymmetric**, the larger magnitude keeps ``Lh`` blocks and
  the other ``Ll`` (DAA's "which stream deserves the high-precision resource"; a tie
  goes to the first of the pair). B (weights) stays exact.
* A window starts at the operand's leading non-zero block and runs ``L`` blocks down
  (never below block 0: the dynamic selection of :func:`~qforge.sim.model.numerics.
  operand_value`). The bits below it are dropped (``RAW``) or rounded to nearest, ties
  to even, a carry out of the window saturating to the window's largest value
  (``ROUND``): SPARQ's two modes.
* A slot needs the block products of one exact MAC (``n x n``, ``n = W / K`` blocks),
  or of two windowed ones (``(Lh + Ll) x n``); ``Lh + Ll <= n`` (:func:`check_paired`)
  makes every slot cost the exact MAC's ``ceil(n x n / P)`` cycles
  (:func:`slot_block_products`), whatever the data, so the array stays in lockstep and
  the mode runs two MACs where the exact mode runs one.
* **Unsigned A**: post-ReLU activations, ``0 .. 2**W - 1``, the sign bit's place used
  for magnitude (SPARQ's unsigned 8-bit activations; ``OperandPrecision.unsigned`` of
  :mod:`qforge.sim.model.numerics`, available to every mode); the magnitude has the same
  ``n`` blocks of ``K`` bits. A signed operand's rounded window may reach ``+2**(W-1)``
  (127 with ``K = 2``, ``L = 2`` rounds to 128): a value the PE's ``n x K``-bit
  magnitude holds, though no ``W``-bit input word does.

The mode is the ``paired`` field of A's :class:`~qforge.sim.model.numerics.OperandPrecision`
(A exact, ``n`` blocks): :func:`qforge.sim.model.numerics.gemm` applies
:func:`paired_operands` to A and multiplies exactly, B in any of its modes.

With ``K = 4`` and ``L = 1`` (windows ``0xF0`` / ``0x0F``: SPARQ's ``opt2``) and with
``K = 1`` and ``L = 4`` (leading-one windows ``0xF0, 0x78, 0x3C, 0x1E``, else ``0x0F``:
``opt5``), unsigned 8-bit A, int8 B and the symmetric rule, the paired GEMM is
bit-identical to SPARQ's public kernel (``gilshm/sparq``,
``cu_gemm_2x48/gemm_mt_kernel.cu``, ``gemm_48_opt``, non-STC), RAW and ROUND:
``tests/sim/model/test_paired.py`` checks it against the kernel's rule written out.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from qforge.sim.model.blocks import dynamic_exponent
from qforge.sim.model.errors import OperandError
from qforge.sim.model.rounding import Rounding, round_shift
from qforge.sim.model.spec import Config

__all__ = ["WindowRounding", "PairRule", "PairedPrecision", "check_paired", "window_value",
           "paired_operands", "slot_block_products"]


class WindowRounding(enum.IntEnum):
    """What happens to the bits below a window (SPARQ's RAW and ROUND)."""

    RAW = 0       #: dropped
    ROUND = 1     #: rounded to nearest, ties to even; a carry out saturates


class PairRule(enum.IntEnum):
    """Who keeps how many blocks when both A operands of a pair are non-zero."""

    SYMMETRIC = 0     #: both keep ``kept_high`` (= ``kept_low``) blocks
    ASYMMETRIC = 1    #: the larger magnitude ``kept_high``, the other ``kept_low``


@dataclass(frozen=True)
class PairedPrecision:
    """A paired mode: the windows' sizes in blocks and their rounding. Symmetric when
    ``kept_high == kept_low``.

    >>> PairedPrecision(1, 1).describe()
    'paired, symmetric 1 block, raw'
    >>> PairedPrecision(3, 1, WindowRounding.ROUND).describe()
    'paired, asymmetric 3/1 blocks, round'
    """

    kept_high: int
    kept_low: int
    rounding: WindowRounding = WindowRounding.RAW

    @property
    def rule(self) -> PairRule:
        return PairRule.SYMMETRIC if self.kept_high == self.kept_low else PairRule.ASYMMETRIC

    def describe(self) -> str:
        if self.rule == PairRule.SYMMETRIC:
            windows = f"symmetric {self.kept_high} block{'s' * (self.kept_high > 1)}"
        else:
            windows = f"asymmetric {self.kept_high}/{self.kept_low} blocks"
        return f"paired, {windows}, {self.rounding.name.lower()}"


def check_paired(config: Config, mode: PairedPrecision) -> None:
    """``mode`` fits ``config``, or one :class:`~qforge.sim.model.errors.OperandError`
    naming the field: ``1 <= kept_low <= kept_high`` and ``kept_high + kept_low <= n``
    (two windowed MACs need no more block products than one exact MAC).

    >>> from qforge.sim.model.spec import load_preset
    >>> check_paired(load_preset("default"), PairedPrecision(2, 2))       # n = 4
    >>> check_paired(load_preset("default"), PairedPrecision(3, 2))
    Traceback (most recent call last):
    ...
    qforge.sim.model.errors.OperandError: paired kept_high + kept_low = 5: at most the 4 blocks of an operand (two windowed MACs must fit one exact MAC's block products)
    """
    n = config.blocks
    if not isinstance(mode.rounding, WindowRounding):
        raise OperandError(f"paired rounding = {mode.rounding!r}: allowed "
                           + ", ".join(f"WindowRounding.{r.name}" for r in WindowRounding))
    for name in ("kept_high", "kept_low"):
        value = getattr(mode, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
            raise OperandError(f"paired {name} = {value!r}: allowed range is 1 .. {n} "
                               f"(blocks of an operand)")
    if mode.kept_low > mode.kept_high:
        raise OperandError(f"paired kept_low = {mode.kept_low}: at most kept_high = "
                           f"{mode.kept_high} (the larger operand keeps more)")
    if mode.kept_high + mode.kept_low > n:
        raise OperandError(f"paired kept_high + kept_low = {mode.kept_high + mode.kept_low}"
                           f": at most the {n} blocks of an operand (two windowed MACs "
                           f"must fit one exact MAC's block products)")


def window_value(x, config: Config, kept: int, rounding: WindowRounding) -> np.ndarray:
    """Each operand reduced to the window of its ``kept`` leading blocks (sign kept):
    the window starts at the leading non-zero block of ``|x|`` and runs ``kept`` blocks
    down, never below block 0. ``RAW`` drops the bits below it (the dynamic selection of
    :func:`~qforge.sim.model.numerics.operand_value`); ``ROUND`` rounds them to nearest,
    ties to even (:func:`~qforge.sim.model.rounding.round_shift`), and a carry out of
    the window saturates to the window's largest value (the window stays where it was).

    Worked example, ``K = 4``, one block kept (SPARQ's ``opt2`` windows ``0xF0``/``0x0F``):
    ``0x5B`` keeps ``0x50`` (RAW) or ``0x60`` (ROUND: ``0xB`` is over half of ``0x10``);
    ``0x58`` and ``0x68`` are ties, to the even window ``0x60`` both; ``0xF9`` rounds up
    out of the window and saturates to ``0xF0``; ``0x0D`` has no high block: exact.

    >>> from qforge.sim.model.spec import load_preset
    >>> k4 = load_preset("tiny")                      # W = 8, K = 4: n = 2 blocks
    >>> x = np.array([0x5B, 0x58, 0x68, 0xF9, 0x0D, -0x5B])
    >>> [hex(v) for v in window_value(x, k4, 1, WindowRounding.RAW)]
    ['0x50', '0x50', '0x60', '0xf0', '0xd', '-0x50']
    >>> [hex(v) for v in window_value(x, k4, 1, WindowRounding.ROUND)]
    ['0x60', '0x60', '0x60', '0xf0', '0xd', '-0x60']
    """
    x = np.asarray(x, dtype=np.int64)
    k, n = config.block_width, config.blocks
    if kept >= n:
        return x
    magnitude = np.abs(x) & ((1 << (n * k)) - 1)
    exponent = dynamic_exponent(magnitude, k, n, kept)      # the window's lowest block
    if rounding == WindowRounding.RAW:          # numerics' dynamic selection of L blocks
        result = (magnitude >> (exponent * k)) << (exponent * k)
        return np.where(x < 0, -result, result)
    largest = (1 << (kept * k)) - 1
    result = magnitude.copy()
    for e in range(1, n - kept + 1):
        chosen = exponent == e
        if chosen.any():
            rounded = np.minimum(round_shift(magnitude[chosen], e * k,
                                             Rounding.NEAREST_EVEN), largest)
            result[chosen] = rounded << (e * k)
    return np.where(x < 0, -result, result)


def paired_operands(a, config: Config, mode: PairedPrecision) -> np.ndarray:
    """The A operands as the paired mode multiplies them (``a``: ``M x D``, int64):
    along the reduction axis, pairs ``(0, 1), (2, 3), ...``; a pair with a zero keeps
    both exact; otherwise both become windows (module docstring). B is never changed,
    so the paired GEMM is ``paired_operands(a) @ b``.

    >>> from qforge.sim.model.spec import load_preset
    >>> k4 = load_preset("tiny")
    >>> a = np.array([[0x5B, 0x3C, 0x00, 0x77, 0x91]])     # pairs (5B,3C) (00,77) (91,-)
    >>> [hex(v) for v in paired_operands(a, k4, PairedPrecision(1, 1))[0]]
    ['0x50', '0x30', '0x0', '0x77', '0x91']
    >>> paired_operands(np.array([[0x5B, 0x3C]]), load_preset("default"),
    ...                 PairedPrecision(3, 1)).tolist()     # K = 2: 0x5B keeps 3 blocks
    [[88, 48]]
    """
    a = np.asarray(a, dtype=np.int64)
    if a.ndim != 2:
        raise OperandError(f"paired A: expected a matrix (M x depth), got {a.ndim} "
                           f"dimensions")
    depth = a.shape[1]
    padded = np.concatenate([a, np.zeros((a.shape[0], depth % 2), dtype=np.int64)], axis=1)
    first, second = padded[:, 0::2], padded[:, 1::2]
    both = (first != 0) & (second != 0)
    if mode.rule == PairRule.SYMMETRIC:
        first_window = window_value(first, config, mode.kept_high, mode.rounding)
        second_window = window_value(second, config, mode.kept_high, mode.rounding)
    else:
        first_high = np.abs(first) >= np.abs(second)          # a tie goes to the first
        high = {name: window_value(v, config, mode.kept_high, mode.rounding)
                for name, v in (("first", first), ("second", second))}
        low = {name: window_value(v, config, mode.kept_low, mode.rounding)
               for name, v in (("first", first), ("second", second))}
        first_window = np.where(first_high, high["first"], low["first"])
        second_window = np.where(first_high, low["second"], high["second"])
    out = np.empty_like(padded)
    out[:, 0::2] = np.where(both, first_window, first)
    out[:, 1::2] = np.where(both, second_window, second)
    return out[:, :depth]


def slot_block_products(config: Config) -> int:
    """Block products one slot (a pair of MACs) is given: one exact MAC's, ``n x n``;
    a slot takes ``ceil(n x n / P)`` cycles for two MACs.

    >>> from qforge.sim.model.spec import load_preset
    >>> slot_block_products(load_preset("default")), slot_block_products(load_preset("tiny"))
    (16, 4)
    >>> math.ceil(slot_block_products(load_preset("default")) / 4)      # cycles per slot
    4
    """
    return config.blocks * config.blocks
