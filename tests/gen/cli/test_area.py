"""qforge area: options and the errors found before synthesis."""

from tests.cli import command_parser, exclusive_groups, options, run_qforge


def test_options():
    parser = command_parser("area")
    table = options(parser)
    assert set(table) == {"--preset", "--spec", "--with-skipping", "--family", "--selectors",
                          "--hierarchy", "--keep", "--json", "--jobs", "--no-cache", "--pe"}
    # --preset and --spec may repeat and mix: one list, in the order given.
    assert table["--preset"].dest == table["--spec"].dest == "designs"
    assert table["--family"].choices == ["ecp5", "ice40"]
    # No default in the parser: without --pe an absent --family is ecp5, with --pe it is
    # refused (--pe measures both families).
    assert table["--family"].default is None and table["--jobs"].default == 1
    assert exclusive_groups(parser) == []
    arguments = parser.parse_args(["--spec", "a.toml", "--preset", "tiny"])
    assert [(kind, str(value)) for kind, value in arguments.designs] == [
        ("spec", "a.toml"), ("preset", "tiny")]


def test_errors_are_one_line(capsys):
    code, out, err = run_qforge(capsys, "area", "--jobs", "0")
    assert (code, out) == (2, "")
    assert err.endswith("\nqforge area: error: argument --jobs: 0: allowed range is 1 .. 64\n")
    code, out, err = run_qforge(capsys, "area", "--keep", " ")
    assert (code, out) == (2, "")
    assert err.endswith("\nqforge area: error: argument --keep: ' ': an empty pattern matches no "
                        "module\n")
    assert run_qforge(capsys, "area", "--preset", "tiny", "--preset", "tiny") == (
        2, "", "qforge: error: --preset/--spec: configuration 'tiny' given twice\n")
