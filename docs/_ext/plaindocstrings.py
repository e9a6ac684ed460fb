"""Show the code's plain indented examples as code.

The docstrings of runengine use a plain-text convention: an example is an indented block after
a blank line, with no ``::`` before it. reStructuredText reads that as a block quote (and
complains when the example is indented further inside). This hook, run by autodoc on every
docstring, turns each such block into a literal block. The docstrings stay as they are.
"""

from __future__ import annotations


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def literal_examples(lines: list[str]) -> list[str]:
    """``lines`` with every indented block that follows a blank line made literal (``::``)."""
    out: list[str] = []
    last_text: str | None = None  # the last non-blank line before the current position
    i = 0
    while i < len(lines):
        line = lines[i]
        after_blank = i > 0 and not lines[i - 1].strip()
        if (
            line.strip()
            and after_blank
            and last_text is not None
            and _indent(line) > _indent(last_text)
            and not last_text.rstrip().endswith("::")
            and not line.lstrip().startswith((">>>", "..", ":", "- ", "* "))
        ):
            base = _indent(last_text)
            out[-1:] = ["", " " * base + "::", ""]
            # copy the whole block: every line indented more than ``base``, or blank
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                out.append(lines[i])
                i += 1
            while out and not out[-1].strip():
                out.pop()
            out.append("")
            last_text = None
            continue
        out.append(line)
        if line.strip():
            last_text = line
        i += 1
    return out


def _process(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = literal_examples(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
