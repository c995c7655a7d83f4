"""Reading the operator's guide (docs/*.md): its fenced blocks, inline code, links, headings,
and the ``autosre`` command lines it quotes, checked against the CLI's own argument parser.

Conventions the guide follows (tests/docs/test_guide.py holds it to them):

- a command is a shell word ``autosre`` (or a path ending in ``/autosre``) at the start of
  a line of a shell block (``sh``, ``bash``, ``shell``, ``console`` or no language) or of
  an inline code span, after any ``NAME=value`` assignments;
- a ```yaml block whose first line is ``FRAGMENT_MARK`` is merged over
  policies/default.yaml and must load as a policy; one with a top-level ``version`` must
  load as it is; one whose first line is ``# playbooks/NAME.yml`` is an example playbook
  that those policies may name.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FRAGMENT_MARK = "# policy fragment: merged into policies/default.yaml"
PLAYBOOK_MARK = re.compile(r"^# playbooks/([A-Za-z0-9_.-]+\.ya?ml)$")
SHELL_LANGS = frozenset({"", "sh", "bash", "shell", "console"})
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATOR = re.compile(r"^[();<>|&]+$")
_MENTION = re.compile(r"(^|[\s/])autosre(\s|$)")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, text (dedented) and opening line."""

    lang: str
    text: str
    line: int

    @property
    def first_line(self) -> str:
        """The block's first line, stripped (where its marks are)."""
        return self.text.split("\n", 1)[0].strip()


@dataclass(frozen=True)
class Page:
    """A Markdown page split into prose paragraphs (lines joined) and fenced blocks."""

    path: Path
    paragraphs: list[tuple[int, str]] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The page's path relative to the repository, for messages."""
        return str(self.path.relative_to(ROOT))


def pages() -> list[Path]:
    """Every page of the guide."""
    return sorted(DOCS.glob("*.md"))


def read_page(path: Path) -> Page:
    """Parse a Markdown file into paragraphs, headings and fenced blocks."""
    page = Page(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    paragraph: list[str] = []
    start = 0
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            text = lines[i].strip()
            heading = _HEADING.match(lines[i])
            if heading is not None:
                page.headings.append(heading.group(2))
            if text:
                start = start if paragraph else i + 1
                paragraph.append(text)
            elif paragraph:
                page.paragraphs.append((start, " ".join(paragraph)))
                paragraph = []
            i += 1
            continue
        if paragraph:
            page.paragraphs.append((start, " ".join(paragraph)))
            paragraph = []
        fence, indent = opened.group("fence"), len(opened.group("indent"))
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][indent:] if not lines[j][:indent].strip() else lines[j].lstrip())
            j += 1
        page.blocks.append(Block(opened.group("lang").lower(), "\n".join(body), i + 1))
        i = j + 1
    if paragraph:
        page.paragraphs.append((start, " ".join(paragraph)))
    return page


def code_spans(paragraph: str) -> list[str]:
    """The inline code spans of a paragraph."""
    return [match.group(2).strip() for match in _SPAN.finditer(paragraph)]


def links(paragraph: str) -> list[str]:
    """The link targets of a paragraph (code spans left out)."""
    return [match.group(2) for match in _LINK.finditer(_SPAN.sub("", paragraph))]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces as '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in read_page(path).headings:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def shell_lines(block: Block) -> list[str]:
    """A shell block's logical lines: continuations joined, prompts dropped."""
    joined = re.sub(r"\\\n", " ", block.text)
    return [line.strip().removeprefix("$ ") for line in joined.split("\n") if line.strip()]


def mentions_autosre(text: str) -> bool:
    """True when the text has the word ``autosre`` where a command could start."""
    return _MENTION.search(text) is not None


def commands_in(text: str) -> list[list[str]]:
    """The argument lists after ``autosre`` of every command in one line of shell
    (ValueError when the line is not shell words, e.g. an unclosed quote)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if _OPERATOR.match(token):
            segments.append([])
        else:
            segments[-1].append(token)
    found = []
    for segment in segments:
        skip = 0
        while skip < len(segment) and _ASSIGNMENT.match(segment[skip]):
            skip += 1
        words = segment[skip:]
        # The program named alone (`autosre`) is a mention, not a command.
        if len(words) > 1 and (words[0] == "autosre" or words[0].endswith("/autosre")):
            found.append(words[1:])
    return found


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _needs_subcommand(parser: argparse.ArgumentParser) -> bool:
    """True when the parser's subcommand is required (``autosre eval`` runs on its own)."""
    return any(
        isinstance(action, argparse._SubParsersAction) and action.required
        for action in parser._actions
    )


def _option(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    for action in parser._actions:
        if name in action.option_strings:
            return action
    return None


@dataclass(frozen=True)
class Verdict:
    """What the CLI makes of a quoted command: the command path, and a problem or None."""

    path: tuple[str, ...]
    problem: str | None


def check_command(parser: argparse.ArgumentParser, args: Sequence[str]) -> Verdict:
    """Walk the parser along the quoted arguments: every subcommand and option must exist,
    and the command must name a runnable (leaf) subcommand."""
    current: argparse.ArgumentParser = parser
    path: tuple[str, ...] = ()
    i = 0
    while i < len(args):
        word = args[i].strip("[]")
        i += 1
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            option = _option(current, name)
            if option is None:
                return Verdict(path, f"`autosre {' '.join(path)}` has no option {name}")
            if option.nargs == 0:
                continue
            value = word.split("=", 1)[1] if "=" in word else (args[i] if i < len(args) else "")
            i += 0 if "=" in word else 1
            # A quoted value must be one the option takes (a placeholder like ROLE is not).
            if option.choices and not value.isupper() and value not in option.choices:
                return Verdict(path, f"{name} takes one of {', '.join(map(str, option.choices))}")
            continue
        subcommands = _subcommands(current)
        if not subcommands:
            continue  # a positional argument of a leaf command, or its placeholder
        if word not in subcommands:
            return Verdict((*path, word), f"no command `autosre {' '.join((*path, word))}`")
        current, path = subcommands[word], (*path, word)
    if _subcommands(current) and _needs_subcommand(current):
        return Verdict(path, f"`autosre {' '.join(path)}` is not a whole command")
    return Verdict(path, None)


def quoted_commands(page: Page) -> Iterator[tuple[int, list[str]]]:
    """Every ``autosre`` command a page quotes, with its line, from spans and shell blocks."""
    for line, paragraph in page.paragraphs:
        for span in filter(mentions_autosre, code_spans(paragraph)):
            for args in commands_in(span):
                yield line, args
    for block in page.blocks:
        if block.lang in SHELL_LANGS:
            for text in filter(mentions_autosre, shell_lines(block)):
                for args in commands_in(text):
                    yield block.line, args


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` laid over ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base.get(key), value)
        return merged
    return over
