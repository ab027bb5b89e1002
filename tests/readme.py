"""The README's console and code blocks, read the way the README tests run them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


@dataclass(frozen=True)
class Command:
    text: str  # as typed after "$ ", continuation lines included
    output: str  # what the README shows it printing


def section(title: str) -> str:
    """The README's text under `## title`, up to the next second-level heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def commands(text: str) -> list[Command]:
    """Each `$ ` line of the console blocks, with its continuation lines (a trailing backslash or an open
    quote) and the output lines after it."""
    found: list[Command] = []
    for block in blocks(text, "console"):
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            if not lines[index].startswith("$ "):
                index += 1
                continue
            command = [lines[index][2:]]
            while (command[-1].endswith("\\") or "\n".join(command).count("'") % 2) and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
            index += 1
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            found.append(Command("\n".join(command), "\n".join(output)))
    return found
