"""The operator's guide (docs/) stays true to the code: every ``autosre`` command it quotes
parses with the real CLI parser, every ``AUTOSRE_...`` variable it names is one the engine
reads, every relative link resolves (anchors included), and every policy snippet loads
with the real policy loader. Conventions: tests/docs/guide.py."""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml

from autosre.cli import build_parser
from engine.errors import InputError
from engine.policy.load import load_policy
from engine.policy.schema import Policy
from tests.docs.guide import (
    DOCS,
    FRAGMENT_MARK,
    PLAYBOOK_MARK,
    ROOT,
    Block,
    anchors,
    check_command,
    commands_in,
    deep_merge,
    links,
    pages,
    quoted_commands,
    read_page,
    slug,
)

# Commands the guide names as not there yet (issue 14). When one lands, the test below
# fails: the pages that say "does not exist yet" must then be rewritten.
NOT_YET: set[tuple[str, ...]] = set()  # commands the guide says do not exist yet
VARIABLE = re.compile(r"\bAUTOSRE_[A-Z0-9_]*[A-Z0-9]\b")
PAGE_IDS = [path.name for path in pages()]


def test_the_guide_has_its_pages() -> None:
    names = {path.name for path in pages()}
    expected = {"README.md", "prometheus.md", "playbooks.md", "trust.md", "models.md"}
    expected |= {"approvals.md", "escalation.md", "reverse-proxy.md", "backup.md"}
    expected |= {"upgrades.md", "sizing.md", "troubleshooting.md"}
    assert expected <= names, f"missing pages: {sorted(expected - names)}"


@pytest.mark.parametrize("path", pages(), ids=PAGE_IDS)
def test_every_quoted_command_exists(path: Path) -> None:
    page = read_page(path)
    parser = build_parser()
    problems = []
    for line, args in quoted_commands(page):
        verdict = check_command(parser, args)
        if verdict.problem is not None and verdict.path not in NOT_YET:
            problems.append(f"{page.name}:{line}: autosre {' '.join(args)}: {verdict.problem}")
    assert not problems, "\n".join(problems)


def test_commands_the_guide_calls_future_do_not_exist_yet() -> None:
    parser = build_parser()
    for path in NOT_YET:
        verdict = check_command(parser, list(path))
        assert verdict.problem is not None, (
            f"`autosre {' '.join(path)}` exists now: rewrite the guide's pages that say it "
            "does not exist yet, and drop it from NOT_YET"
        )


def test_the_command_checker_refuses_what_the_cli_refuses() -> None:
    parser = build_parser()
    for fine in (
        ["db", "upgrade"],
        ["playbook", "run", "x", "--limit", "web1", "-e", "a=b"],
        ["maintenance", "start", "--for=2h", "--host", "w"],
    ):
        assert check_command(parser, fine).problem is None, fine
    assert "no command" in (check_command(parser, ["nosuch"]).problem or "")
    assert "no command" in (check_command(parser, ["users", "delete", "bob"]).problem or "")
    assert "no option --bogus" in (check_command(parser, ["run", "--bogus"]).problem or "")
    assert "not a whole command" in (check_command(parser, ["policy"]).problem or "")
    assert "--role takes one of" in (
        check_command(parser, ["users", "add", "bob", "--role", "root"]).problem or ""
    )
    assert commands_in("X=1 .venv/bin/autosre db upgrade && autosre run &") == [
        ["db", "upgrade"],
        ["run"],
    ]
    assert commands_in("ansible_user=autosre ansible_become=true") == []


# -- variables ------------------------------------------------------------------------


@cache
def known_variables() -> frozenset[str]:
    """What the engine reads: engine/settings.py, and the variables the shipped policies and
    the guide's own policy snippets name (``*_env``), each also as ``NAME_FILE``."""
    names = set(VARIABLE.findall((ROOT / "engine" / "settings.py").read_text(encoding="utf-8")))
    policies = [load_policy(path) for path in sorted((ROOT / "policies").glob("*.yaml"))]
    policies += [policy for _, policy in all_snippet_policies()]
    named: set[str] = set()
    for policy in policies:
        named |= policy.notifications.secret_names()
        if policy.alerts.token_env:
            named.add(policy.alerts.token_env)
    return frozenset(names | named | {f"{name}_FILE" for name in named})


@pytest.mark.parametrize("path", pages(), ids=PAGE_IDS)
def test_every_autosre_variable_exists(path: Path) -> None:
    named = set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    unknown = sorted(named - known_variables())
    assert not unknown, f"docs/{path.name} names variables the engine never reads: {unknown}"


# -- links ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", pages(), ids=PAGE_IDS)
def test_every_relative_link_resolves(path: Path) -> None:
    page = read_page(path)
    problems = []
    for line, paragraph in page.paragraphs:
        for target in links(paragraph):
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.is_relative_to(ROOT) or not dest.exists():
                problems.append(f"{page.name}:{line}: {target}: no such file in the repository")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{page.name}:{line}: {target}: no heading #{anchor} there")
    assert not problems, "\n".join(problems)


def test_every_page_is_in_the_index() -> None:
    index = read_page(DOCS / "README.md")
    linked = {target.partition("#")[0] for _, text in index.paragraphs for target in links(text)}
    missing = [p.name for p in pages() if p.name != "README.md" and p.name not in linked]
    assert not missing, f"docs/README.md does not link {missing}"


def test_anchors_are_githubs() -> None:
    assert slug("Sizing (`bench/scale.py`, in `make bench`)") == "sizing-benchscalepy-in-make-bench"
    assert slug("A worked example: the lab") == "a-worked-example-the-lab"
    assert "several-replicas-on-postgresql" in anchors(ROOT / "README.md")
    # A heading inside a code block is no heading.
    assert "two-exporters-behind-one-address-name-each-hosts-series" not in anchors(
        ROOT / "README.md"
    )


# -- policy snippets ------------------------------------------------------------------


def yaml_blocks() -> list[tuple[str, Block]]:
    """Every ```yaml block of the guide, with its page's name."""
    return [
        (path.name, block)
        for path in pages()
        for block in read_page(path).blocks
        if block.lang in {"yaml", "yml"}
    ]


def doc_playbooks() -> dict[str, str]:
    """The example playbooks the guide shows (``# playbooks/NAME.yml`` blocks)."""
    found = {}
    for _, block in yaml_blocks():
        mark = PLAYBOOK_MARK.match(block.first_line)
        if mark is not None:
            found[mark.group(1)] = block.text
    return found


def playbook_dir(where: Path) -> Path:
    """The repository's playbooks and the guide's example ones, in one directory."""
    where.mkdir(parents=True, exist_ok=True)
    for shipped in (ROOT / "playbooks").glob("*.y*ml"):
        (where / shipped.name).symlink_to(shipped)
    for name, text in doc_playbooks().items():
        (where / name).write_text(text, encoding="utf-8")
    return where


def snippet_policy(block: Block, tmp: Path, playbooks: Path) -> Policy | None:
    """The policy a block holds, loaded by the real loader; None for other YAML."""
    data = yaml.safe_load(block.text)
    if block.first_line == FRAGMENT_MARK:
        base = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text(encoding="utf-8"))
        data = deep_merge(base, data)
    elif not (isinstance(data, dict) and "version" in data):
        return None
    path = tmp / f"snippet-{block.line}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_policy(path, playbook_dir=playbooks)


@cache
def all_snippet_policies() -> tuple[tuple[str, Policy], ...]:
    """Every policy snippet of the guide that loads (for the variables they name; the
    snippets that do not load fail their page's own test)."""
    with tempfile.TemporaryDirectory(prefix="autosre-docs-") as tmp:
        playbooks = playbook_dir(Path(tmp) / "playbooks")
        found = []
        for name, block in yaml_blocks():
            try:
                policy = snippet_policy(block, Path(tmp), playbooks)
            except (InputError, yaml.YAMLError):
                continue
            if policy is not None:
                found.append((f"{name}:{block.line}", policy))
        return tuple(found)


@pytest.mark.parametrize("path", pages(), ids=PAGE_IDS)
def test_every_yaml_block_parses_and_every_policy_snippet_loads(path: Path, tmp_path: Path) -> None:
    playbooks = playbook_dir(tmp_path / "playbooks")
    for block in read_page(path).blocks:
        if block.lang not in {"yaml", "yml"}:
            continue
        where = f"docs/{path.name}:{block.line}"
        data = yaml.safe_load(block.text)  # a YAML error names the line
        if PLAYBOOK_MARK.match(block.first_line):
            assert isinstance(data, list) and data, f"{where}: a playbook is a list of plays"
            for play in data:
                assert {"name", "hosts", "tasks"} <= set(play), f"{where}: {sorted(play)}"
            continue
        # load_policy raises PolicyError naming the field and the reason.
        snippet_policy(block, tmp_path, playbooks)


def test_the_guide_has_policy_snippets_of_both_kinds() -> None:
    blocks = [block for _, block in yaml_blocks()]
    fragments = [b for b in blocks if b.first_line == FRAGMENT_MARK]
    whole = [b for b in blocks if "version" in (yaml.safe_load(b.text) or {})]
    assert len(fragments) >= 5 and whole, "the policy convention checks nothing"
    assert len(all_snippet_policies()) == len(fragments) + len(whole), "some do not load"
