"""Port signatures shared by several components, defined once.

The streams (``amaranth.lib.stream`` valid/ready rules; payload layouts in
:mod:`qforge.hdl.layouts` and :mod:`qforge.hdl.isa`):

* :func:`command_stream`: GEMM commands (``cmd``);
* :func:`a_stream`, :func:`b_stream`: operand beats (``a_in``, ``b_in``);
* :func:`result_stream`: result beats (``result``);
* :func:`instruction_stream`: 64-bit instruction words (``instruction``);
* :func:`addend_stream`: addend beats of the programmable core (``addend``);
* :func:`epilogue_stream`: a GEMM's addend settings, decoder to addend stage.

The port sets, each seen from the component that has them:

* :class:`AcceleratorSignature`: ``cmd``, ``a_in``, ``b_in`` in; ``result``, ``idle``,
  ``error`` out. :class:`qforge.hdl.top.Accelerator` has it;
  :class:`qforge.hdl.link.HostLink` drives one (its ``accelerator`` port is the flipped
  signature), so the two connect with one ``wiring.connect``.
* :class:`CoreSignature`: the programmable core, :class:`qforge.hdl.core.Core`: the
  same with ``instruction`` instead of ``cmd`` and an ``addend`` stream.

The instruction decoder (:class:`qforge.hdl.decoder.InstructionDecoder`) takes the
:func:`instruction_stream` and drives a :func:`command_stream` into the accelerator.

Member order is port order in the generated Verilog; it is the order the ports had
before these classes existed (the Verilog is unchanged).

>>> from qforge.sim.model.spec import load_preset
>>> sorted(AcceleratorSignature(load_preset("tiny")).members)
['a_in', 'b_in', 'cmd', 'error', 'idle', 'result']
>>> [name for name in CoreSignature(load_preset("tiny")).members]
['instruction', 'a_in', 'b_in', 'addend', 'result', 'idle', 'error']
"""

from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qforge.hdl.isa import instruction_layout
from qforge.hdl.layouts import (a_beat_layout, addend_layout, b_beat_layout, command_layout,
                                epilogue_layout, result_layout)
from qforge.sim.model.spec import Config

__all__ = ["command_stream", "a_stream", "b_stream", "result_stream", "instruction_stream",
           "addend_stream", "epilogue_stream", "AcceleratorSignature", "CoreSignature"]


def command_stream(config: Config) -> stream.Signature:
    """GEMM commands: :func:`~qforge.hdl.layouts.command_layout`."""
    return stream.Signature(command_layout(config))


def a_stream(config: Config) -> stream.Signature:
    """A operand beats: :func:`~qforge.hdl.layouts.a_beat_layout`."""
    return stream.Signature(a_beat_layout(config))


def b_stream(config: Config) -> stream.Signature:
    """B operand beats: :func:`~qforge.hdl.layouts.b_beat_layout`."""
    return stream.Signature(b_beat_layout(config))


def result_stream(config: Config) -> stream.Signature:
    """Result beats: :func:`~qforge.hdl.layouts.result_layout`."""
    return stream.Signature(result_layout(config))


def instruction_stream() -> stream.Signature:
    """Instruction words: :func:`~qforge.hdl.isa.instruction_layout`."""
    return stream.Signature(instruction_layout())


def addend_stream(config: Config) -> stream.Signature:
    """Addend beats: :func:`~qforge.hdl.layouts.addend_layout`."""
    return stream.Signature(addend_layout(config))


def epilogue_stream(config: Config) -> stream.Signature:
    """A GEMM's addend settings: :func:`~qforge.hdl.layouts.epilogue_layout`."""
    return stream.Signature(epilogue_layout(config))


class _ConfiguredSignature(wiring.Signature):
    """A signature built from a :class:`Config`; equal to another of its class built
    from an equal configuration."""

    def __init__(self, config: Config, members: dict):
        self._config = config
        super().__init__(members)

    @property
    def config(self) -> Config:
        return self._config

    def __eq__(self, other):
        return type(other) is type(self) and self.members == other.members

    def __hash__(self):
        return hash((type(self), self._config.name))

    def __repr__(self):
        return f"{type(self).__name__}({self._config.name!r})"


class AcceleratorSignature(_ConfiguredSignature):
    """The GEMM accelerator's ports, seen from the accelerator
    (:class:`qforge.hdl.top.Accelerator` documents the protocol):

    * ``cmd`` (in, :func:`command_stream`), ``a_in`` (in, :func:`a_stream`), ``b_in``
      (in, :func:`b_stream`);
    * ``result`` (out, :func:`result_stream`);
    * ``idle`` (out, 1 bit), ``error`` (out, 1 bit, sticky until reset).
    """

    def __init__(self, config: Config):
        super().__init__(config, {
            "cmd": In(command_stream(config)),
            "a_in": In(a_stream(config)),
            "b_in": In(b_stream(config)),
            "result": Out(result_stream(config)),
            "idle": Out(1),
            "error": Out(1),
        })


class CoreSignature(_ConfiguredSignature):
    """The programmable core's ports, seen from the core (:class:`qforge.hdl.core.Core`
    documents the protocol): :class:`AcceleratorSignature` with ``instruction`` (in,
    :func:`instruction_stream`) instead of ``cmd`` and ``addend`` (in,
    :func:`addend_stream`)."""

    def __init__(self, config: Config):
        super().__init__(config, {
            "instruction": In(instruction_stream()),
            "a_in": In(a_stream(config)),
            "b_in": In(b_stream(config)),
            "addend": In(addend_stream(config)),
            "result": Out(result_stream(config)),
            "idle": Out(1),
            "error": Out(1),
        })
