"""The fuzz tier for the command line: random commands with random bad option values,
bad output paths and bad input files. Every call must end with exit status 2 and one
error line (``qforge: error: ...``, or argparse's ``qforge CMD: error: ...`` after its
usage), never a traceback, within a second or two, and before any work starts (the
``no_work`` fixture fails the test if a command's expensive function is reached)."""

import re
import time

from hypothesis import given, strategies as st

from qforge.gen.cli.common import COUNT_MAXIMUM, SEED_MAXIMUM
from tests.cli import run_qforge
from tests.fuzz import fuzz_settings
from tests.gen.cli.test_checked_options import no_work  # noqa: F401 (a fixture)

#: What a run may take, in seconds: every call here fails while parsing or checking.
SECONDS = 2.0

#: One error line: qforge's own, argparse's after the usage, or the assembler's
#: FILE:LINE:COLUMN one (followed by the source line and a caret).
ERROR_LINE = re.compile(r"^qforge(?: [a-z]+)?: error: \S.*$")
ASM_ERROR_LINE = re.compile(r"^.+:\d+:\d+: error: \S.*$")

#: Each command with the arguments it needs to get as far as its option checks.
BASES = {
    "generate": ["--preset", "tiny", "-o", "{tmp}/out"],
    "lint": ["--preset", "tiny"],
    "demo": ["--preset", "tiny"],
    "bench": ["--preset", "tiny"],
    "train": ["--emulate"],
    "repro": [],
    "area": ["--preset", "tiny"],
    "run": ["{tmp}/prog.qasm", "--preset", "tiny"],
    "gemm": ["--preset", "tiny", "--a", "{tmp}/a.npy", "--b", "{tmp}/b.npy", "-o",
             "{tmp}/c.npy"],
    "fuzz": ["--preset", "tiny"],
    "build": ["--board", "icebreaker", "--preset", "tiny"],
    "results": ["--reuse"],
}

#: (command, option, allowed low, allowed high) of the whole-number options.
WHOLE = [("demo", "--per-mode", 1, 1000), ("demo", "--programs", 0, COUNT_MAXIMUM),
         ("demo", "--seed", 0, SEED_MAXIMUM), ("train", "--epochs", 1, 10_000),
         ("train", "--seed", 0, 65535), ("train", "--jobs", 1, 1024),
         ("run", "--seed", 0, SEED_MAXIMUM), ("repro", "--seed", 0, SEED_MAXIMUM),
         ("area", "--jobs", 1, 64), ("fuzz", "--programs", 1, COUNT_MAXIMUM),
         ("fuzz", "--instructions", 1, COUNT_MAXIMUM), ("fuzz", "--seed", 0, SEED_MAXIMUM),
         ("build", "--baud", 1, 100_000_000)]

#: (command, option, allowed low, allowed high) of the real-number options.
REAL = [("fuzz", "--invalid", 0.0, 1.0), ("fuzz", "--stall", 0.0, 1.0),
        ("build", "--clock", 0.0, 10_000.0)]

#: (command, option, suffix or "" for a folder) of the output options.
OUTPUT = [("generate", "-o", ""), ("demo", "--output", ""), ("bench", "--plot-dir", ""),
          ("bench", "--plot", ".png"), ("bench", "--sparse-plot", ".png"),
          ("train", "--plot", ".png"), ("train", "--json", ".json"),
          ("gemm", "-o", ".npy"), ("build", "--build-dir", ""), ("results", "--output", "")]

#: (command, option or None for a positional) of the input files.
INPUT = [("lint", "--spec"), ("lint", "--verilog"), ("train", "--config"), ("run", None),
         ("gemm", "--a"), ("gemm", "--b"), ("generate", "--spec"), ("demo", "--spec")]


def _not_a_whole_number():
    return st.one_of(
        st.sampled_from(["", " ", "1.5", "1e3", "0x10", "nan", "inf", "-", "++1", "1_0_",
                         "٣", "1 2", "9" * 5000]),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=30).filter(lambda text: not _is_int(text)))


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


@st.composite
def bad_whole(draw):
    command, option, low, high = draw(st.sampled_from(WHOLE))
    value = draw(st.one_of(
        st.integers(max_value=low - 1).map(str),
        st.integers(min_value=high + 1).map(str),
        _not_a_whole_number()))
    return command, [option, value]


@st.composite
def bad_real(draw):
    command, option, low, high = draw(st.sampled_from(REAL))
    value = draw(st.one_of(
        st.floats(max_value=low, exclude_max=option != "--invalid", allow_nan=False)
        .filter(lambda v: v < low or (v == low and option == "--clock")).map(repr),
        st.floats(min_value=high, exclude_min=option == "--invalid" or option == "--clock",
                  allow_nan=False).filter(lambda v: v > high or option == "--stall")
        .map(repr),
        st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "", "1,5", "½", "0x1p3",
                         "1" * 5000])))
    return command, [option, value]


@st.composite
def bad_output(draw):
    command, option, suffix = draw(st.sampled_from(OUTPUT))
    name = draw(st.text("abcxyz-_.", min_size=1, max_size=8)) + suffix
    path = draw(st.sampled_from([
        "", "/dev/null/{name}", "/dev/null/a/b/{name}", "{tmp}/file/{name}",
        "{tmp}/file/deeper/{name}", "/proc/qforge/{name}", "{tmp}/" + "n" * 300 + "/{name}",
        "{tmp}/" + "m" * 5000 + suffix, "/sys/qforge/{name}"]
        + (["{tmp}/taken" + suffix, "{tmp}/out.txt", "{tmp}/out"] if suffix else [])))
    return command, [f"{option}={path.replace('{name}', name)}"]


@st.composite
def bad_input(draw):
    command, option = draw(st.sampled_from(INPUT))
    path = draw(st.sampled_from([
        "{tmp}/missing.toml", "{tmp}", "{tmp}/file/x", "/dev/null/x", "{tmp}/" + "i" * 5000,
        "/dev/zero", "/dev/null"]
        # a file that is not what the option reads (lint would lint it: that is work)
        + (["{tmp}/garbage.toml"] if option != "--verilog" else [])))
    if option is None:                           # run's FILE replaces the base's
        return command, ["--replace-file", path]
    return command, [f"{option}={path}"]


def _argv(command, bad, tmp):
    base = [argument.replace("{tmp}", str(tmp)) for argument in BASES[command]]
    bad = [argument.replace("{tmp}", str(tmp)) for argument in bad]
    if bad[0] == "--replace-file":
        base[0] = bad[1]
        bad = []
    return [command, *base, *bad]


def _fixtures(tmp):
    (tmp / "file").write_text("")
    (tmp / "taken.png").mkdir(exist_ok=True)
    (tmp / "taken.json").mkdir(exist_ok=True)
    (tmp / "taken.npy").mkdir(exist_ok=True)
    (tmp / "garbage.toml").write_text("[array\nrows = = 3\n")


@fuzz_settings
@given(call=st.one_of(bad_whole(), bad_real(), bad_output(), bad_input()))
def test_a_bad_option_is_one_error_line_before_any_work(capsys, tmp_path, no_work,  # noqa: F811
                                                        call):
    _fixtures(tmp_path)
    command, bad = call
    argv = _argv(command, bad, tmp_path)
    started = time.monotonic()
    status, out, err = run_qforge(capsys, *argv)
    seconds = time.monotonic() - started
    assert status == 2, (argv, out, err)
    assert out == ""
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    if ASM_ERROR_LINE.match(errors[0]) and command == "run":
        assert err.splitlines()[-3] == errors[0]         # then the source line and a caret
    else:
        assert ERROR_LINE.match(errors[0]) and err.splitlines()[-1] == errors[0], err
    assert not err.startswith("usage:") or errors[0].startswith(f"qforge {command}: error:")
    assert seconds < SECONDS, f"{argv}: {seconds:.1f} s"
