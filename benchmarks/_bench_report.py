"""Tables of `benchmarks/speed.py`: one definition, printed with rich and written as markdown."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tab:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    right: set[int] = field(default_factory=set)  # indexes of right-aligned (numeric) columns

    def add(self, *cells: object) -> None:
        self.rows.append(["" if c is None else str(c) for c in cells])

    def rich(self):
        from rich.table import Table

        t = Table(title=self.title, title_justify="left", caption="\n".join(self.notes) or None, caption_justify="left")
        for i, c in enumerate(self.columns):
            t.add_column(c, justify="right" if i in self.right else "left")
        for r in self.rows:
            t.add_row(*r)
        return t

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---:" if i in self.right else "---" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def num(x: float | None, digits: int = 1) -> str:
    """A number for a table: fixed digits, '-' for missing."""
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"
