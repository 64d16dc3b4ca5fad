"""A Griffe extension for the API reference: read the library's reST-flavoured docstrings.

taskbalance's docstrings are Google style with a few reStructuredText constructs
(``.. math::`` blocks, ``:math:`` and cross-reference roles, ``Example:`` sections).
This extension rewrites them, at documentation time only, into what mkdocstrings and
arithmatex render: ``$$ ... $$`` blocks, ``$...$`` inline math, code spans, and an
``Examples:`` section whose doctests become code blocks. The source is not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj|ref):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_to_markdown(text: str) -> str:
    """Rewrite the reST constructs of a docstring into Markdown + arithmatex.

    Example:
        >>> print(rst_to_markdown(".. math::\\n    a = b\\n\\nSee :class:`~x.Y`, :math:`c`."))
        $$
        a = b
        $$
        <BLANKLINE>
        See `Y`, $c$.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_BLOCK.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        body = [m.group("rest").strip()] if m.group("rest").strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(indent)):
            if lines[i].strip():
                body.append(lines[i].strip())
            elif body:  # a blank line after the body ends the block
                break
            i += 1
        out += [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$"]
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda mm: f"${mm.group(1)}$", text)
    text = _ROLE.sub(lambda mm: f"`{mm.group(1).rsplit('.', 1)[-1]}`", text)
    return re.sub(r"^(\s*)Example:\s*$", r"\1Examples:", text, flags=re.MULTILINE)


class RstDocstrings(griffe.Extension):
    """Apply :func:`rst_to_markdown` to every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **_kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
