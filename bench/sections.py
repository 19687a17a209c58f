"""Replace one marked section of BENCHMARKS.md (``<!-- name:start -->`` ... ``<!-- name:end -->``)."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(name: str, lines: list[str], path: Path = BENCHMARKS) -> None:
    """Put ``lines`` between the section's markers, appending the section if it is new."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = "\n".join([start, *lines, end])
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


def machine_line(note: str = "") -> str:
    """``Machine: <cpu>, <n> cores, <ram> GiB<note>; <versions>.``: the header line every benchmark section starts with."""
    from bench.etl import machine_info, versions

    m, v = machine_info(), versions()
    return (f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram'] / 2**30:.0f} GiB{note}; "
            + ", ".join(f"{key} {val}" for key, val in v.items()) + ".")


RESULT = "RESULT "


def child_result(script: str, args: list[str], label: str) -> dict:
    """Run ``python script args`` in a fresh process (a JVM of its own) and return its last ``RESULT <json>`` line."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, script, *args], cwd=BENCHMARKS.parent, capture_output=True, text=True,
                         check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith(RESULT)]
    if out.returncode or not lines:
        raise SystemExit(f"the run {label!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])
