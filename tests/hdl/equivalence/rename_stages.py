"""Print a Yosys script that renames the output stage's pipeline registers of a design
built before the stages were records (one signal per field: ``stage2_row``,
``stage1_x0``, ...) to the names the records' fields have (``stage2.row``,
``stage1.x[0]``, ...), so that ``equiv_make`` pairs them (see README.md).

Usage: ``python rename_stages.py OLD.v > rename.ys``; check.sh runs it on the gold side
with ``GOLD_SCRIPT=rename.ys``. Only names of the old scheme are renamed; every other
name is left alone, and a name that does not exist in the new design stays unpaired
(it is not assumed equal to anything).
"""

import re
import sys

# stageK_FIELD and its members (stageK_row[0], stageK_control.shift)
_FIELD = re.compile(r"^(stage[1-5])_(valid|last|gemm_last|row|control|relu|wide|saturate)"
                    r"((?:[.\[].*)?)$")
# stageK_FIELD<lane>: one signal per lane, now an array element
_LANE = re.compile(r"^(stage[1-5])_(x|y|bits|addend|rounded|other)(\d+)$")
_MODULE = re.compile(r"^module\s+(\\?\S+?)\s*\(")
_DECLARATION = re.compile(r"^\s*(?:wire|reg)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\\\S+|\w+)")


def new_name(name: str) -> str | None:
    """The record field's name for the old signal ``name``, or None."""
    if match := _FIELD.match(name):
        return f"{match[1]}.{match[2]}{match[3]}"
    if match := _LANE.match(name):
        return f"{match[1]}.{match[2]}[{match[3]}]"
    return None


def script(verilog: str) -> str:
    lines, module = [], None
    for line in verilog.splitlines():
        if match := _MODULE.match(line):
            module = match[1]
            lines.append(f"cd {module}")
        elif line.startswith("endmodule"):
            # Back to the design ("cd .." would go to the parent of a dotted name).
            lines.append("cd")
        elif module and (match := _DECLARATION.match(line)):
            name = match[1].lstrip("\\")
            if (renamed := new_name(name)) is not None:
                lines.append(f"rename \\{name} \\{renamed}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        sys.stdout.write(script(file.read()))
