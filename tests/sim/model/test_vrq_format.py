"""The VRQ format (:mod:`qforge.sim.model.vrq_format`): one set of limits and one
range-bit rule for the configuration, the training configurations and
:class:`VrqFormat`; the word layout round trip."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qforge.sim.model.spec import VRQ_SCHEMA, ConfigError, from_dict, load_preset
from qforge.sim.model.vrq_format import (VRQ_LIMITS, VrqFormat, range_stride_error,
                                         vrq_pack, vrq_range_bits, vrq_unpack)


@given(st.integers(1, 1 << 20))
def test_range_bits_hold_every_range_index(ranges):
    bits = vrq_range_bits(ranges)
    assert bits == (1 if ranges == 1 else math.ceil(math.log2(ranges)))
    assert ranges - 1 < 1 << bits


def test_the_configuration_schema_uses_the_limits():
    assert {field.name: (field.minimum, field.maximum) for field in VRQ_SCHEMA} == VRQ_LIMITS


@given(st.sampled_from(sorted(VRQ_LIMITS)), st.integers(-2, 70))
def test_vrq_format_accepts_exactly_the_limits(name, value):
    values = {"code_width": 8, "range_stride": 2, "ranges": 4} | {name: value}
    low, high = VRQ_LIMITS[name]
    legal = low <= value <= high and values["range_stride"] <= values["code_width"]
    if legal:
        assert VrqFormat(**values).range_bits == vrq_range_bits(values["ranges"])
    else:
        with pytest.raises(ValueError, match=r"^vrq\.(code_width|range_stride|ranges) = "):
            VrqFormat(**values)


def test_stride_rule_message_is_shared():
    assert range_stride_error(3, 4) == "must not exceed vrq.code_width (3)"
    spec = load_preset("default").to_dict() | {"vrq": {"code_width": 3, "range_stride": 4,
                                                       "ranges": 2}}
    with pytest.raises(ConfigError, match=r"vrq\.range_stride = 4: must not exceed "
                                          r"vrq\.code_width \(3\)$"):
        from_dict(spec)
    with pytest.raises(ValueError, match=r"^vrq\.range_stride = 4: must not exceed "
                                         r"vrq\.code_width \(3\), or a code"):
        VrqFormat(3, 4, 2)


@given(st.integers(1, 8), st.data())
def test_pack_unpack_round_trip(ranges, data):
    config = from_dict(load_preset("default").to_dict()
                       | {"vrq": {"code_width": 4, "range_stride": 2, "ranges": ranges}})
    count = data.draw(st.integers(1, 20))
    sign = np.array(data.draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    code = np.array(data.draw(st.lists(st.integers(0, 15), min_size=count, max_size=count)))
    group = np.array(data.draw(st.lists(st.integers(0, ranges - 1), min_size=count,
                                        max_size=count)))
    words = vrq_pack(sign, code, group, config)
    assert ((words >= -128) & (words <= 127)).all()
    assert [part.tolist() for part in vrq_unpack(words, config)] == [
        sign.tolist(), code.tolist(), group.tolist()]
