"""What every benchmark prints: Markdown tables of medians and ratios."""

from __future__ import annotations


def render(header: tuple[str, ...], body: list[tuple[str, ...]], left: set[int]) -> str:
    """A Markdown table; columns in ``left`` are left-aligned, the others right-aligned."""
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        cells = [c.ljust(w) if i in left else c.rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), rule, *map(fmt, body)])
