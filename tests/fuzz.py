"""The fuzz tier's budget: one place that says how many random inputs each fuzz test tries.

The fuzz tests (random spec TOML, random assembly text, random link frame sequences,
random bad CLI calls) are Hypothesis properties decorated with :data:`fuzz_settings`.
``make test`` runs them with a small budget (:data:`FUZZ_EXAMPLES`, default 25 inputs per
property); ``make test-all`` and ``make fuzz-all`` set ``QFORGE_FUZZ_EXAMPLES`` (500) for
a deeper run. The inputs are derandomized in the small tier (the same 25 on every run,
so CI is reproducible) and random in the large one.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ_EXAMPLES", "fuzz_settings"]


def _budget() -> int:
    text = os.environ.get("QFORGE_FUZZ_EXAMPLES", "25")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"QFORGE_FUZZ_EXAMPLES={text!r}: expected a whole number >= 1")
    return int(text)


FUZZ_EXAMPLES = _budget()
"""Inputs per fuzz property (``QFORGE_FUZZ_EXAMPLES``; 25 unless set)."""

fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # a property bounds its own time (each asserts its run's seconds)
    derandomize="QFORGE_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    print_blob=True,
)
"""Hypothesis settings of every fuzz property: the tier's budget, no per-example
deadline (the properties time themselves), reproducible in ``make test``."""
