"""The contract of `examples/from_spec.rs`, checked from outside on the built binary:

    python3 tests/contracts/from_spec.py target/debug/examples/from_spec

- `seeds.toml` prints 20 lines `output~> (original, reversed)`, then the report, and exits 0;
- `shouting.toml` (a stage inserted by editing the spec) pairs each string with its
  upper-cased reversal; `diamonds.json` runs theboxahaan/pipelines' test graph;
- a spec with mistakes exits 1 and prints every mistake as `file:line:column: message`,
  naming the nodes and registry names; a missing file and a TOML syntax error too;
- nothing ever prints a panic.
"""

import os
import re
import subprocess
import sys
import tempfile

PAIR = re.compile(r"^output~> \(([^,]+), ([^)]+)\)$")


def run(exe, spec):
    done = subprocess.run(
        [exe, spec], capture_output=True, text=True, timeout=60, env={**os.environ, "RUST_BACKTRACE": "0"}
    )
    assert "panicked" not in done.stderr + done.stdout, done.stderr
    return done


def pairs(stdout):
    return [PAIR.match(line).groups() for line in stdout.splitlines() if line.startswith("output~>")]


def main():
    exe = sys.argv[1]

    seeds = run(exe, "examples/specs/seeds.toml")
    assert seeds.returncode == 0, seeds.stderr
    got = pairs(seeds.stdout)
    assert len(got) == 20, seeds.stdout
    assert all(reversed_ == original[::-1] for original, reversed_ in got), got
    assert "every item accounted for" in seeds.stdout, seeds.stdout
    lines = seeds.stdout.splitlines()
    assert lines.index("") == 20, "the pairs come first, then the report"

    shouting = run(exe, "examples/specs/shouting.toml")
    assert shouting.returncode == 0, shouting.stderr
    got = pairs(shouting.stdout)
    assert len(got) == 20 and all(r == o.upper()[::-1] for o, r in got), got

    diamonds = run(exe, "examples/specs/diamonds.json")
    assert diamonds.returncode == 0, diamonds.stderr
    got = pairs(diamonds.stdout)
    assert len(got) == 5 and all(b.endswith("+" + a) for a, b in got), got

    mistakes = run(exe, "examples/specs/mistakes.toml")
    assert mistakes.returncode == 1, mistakes
    expected = [
        "examples/specs/mistakes.toml has 4 mistakes:",
        "examples/specs/mistakes.toml:2:37: edge `rev => otu`: there is no node `otu`: did you mean `out`?",
        "examples/specs/mistakes.toml:6:1: node `inp`: `uuids` takes arguments of type `Count`, and these do not fit: unknown field `cuont`, expected `count`",
        "examples/specs/mistakes.toml:9:8: node `rev` uses `revrese`, which is not in the registry: did you mean `reverse`?",
        "examples/specs/mistakes.toml:13:13: node `out`: there is no option `wokers`: did you mean `workers`?",
    ]
    assert mistakes.stderr.splitlines() == expected, mistakes.stderr
    assert mistakes.stdout == "", mistakes.stdout

    missing = run(exe, "examples/specs/no-such-spec.toml")
    assert missing.returncode == 1 and "cannot read it" in missing.stderr, missing

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as broken:
        broken.write('edges = ["inp => out"\n[nodes.inp]\nuse = "uuids"\n')
    try:
        syntax = run(exe, broken.name)
        assert syntax.returncode == 1, syntax
        assert f"{broken.name}:2:1: " in syntax.stderr, syntax.stderr
    finally:
        os.unlink(broken.name)
    print("from_spec: contract holds")


if __name__ == "__main__":
    main()
