"""Settings for the whole suite."""


def pytest_collection_modifyitems(config, items):
    """Tests that run Verilator or Yosys first, the rest after them (in their order).

    With parallel workers (``make test``: pytest-xdist), the long builds and simulations
    then start at once and the many short unit tests fill the workers' last minutes,
    so the workers finish together instead of one running a build alone at the end.
    """
    def tools_first(item):
        return 0 if item.get_closest_marker("rtl") or item.get_closest_marker("synth") else 1
    items.sort(key=tools_first)
