"""A small Dockerfile reader, and a stand-in builder that carries out a stage's WORKDIR, ENV,
COPY and RUN steps in order under a scratch directory instead of an image's filesystem.

Absolute paths in ENV values and in WORKDIR/COPY destinations are re-rooted under that
directory, so `RUN python -m venv "$VIRTUAL_ENV"` builds a real venv there. Every stage
shares the one directory, so `COPY --from=build /opt/venv /opt/venv` finds the venv already
in place, as the runtime stage would. A stage's RUN steps are skipped on request (the
runtime stage's apt-get and useradd would change this machine).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), its flags (``--from=build``) and the rest."""

    keyword: str
    flags: tuple[str, ...]
    args: str

    def words(self) -> list[str]:
        """The arguments as a list: JSON form as written, shell form split like a shell."""
        if self.args.startswith("["):
            parsed: list[str] = json.loads(self.args)
            return parsed
        return shlex.split(self.args)


@dataclass
class Stage:
    """The instructions from one FROM to the next."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: continuations joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments inside a continued instruction are dropped too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        pending = ""
        flags: list[str] = []
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        found.append(Instruction(keyword.upper(), tuple(flags), rest))
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, in order."""
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        else:
            assert found, "an instruction before FROM"
            found[-1].instructions.append(instruction)
    return found


class ScratchBuilder:
    """Carries out stages' steps under ``root`` (a stand-in for the image's /)."""

    def __init__(
        self,
        context: Path,
        root: Path,
        *,
        path: str,
        timeout: float,
        outside: dict[str, str] | None = None,
    ) -> None:
        self.context = context
        self.root = root
        self.path = path  # PATH for RUN steps (the image's python found on it)
        self.timeout = timeout
        self.outside = outside or {}  # the build machine's settings (pip's package source)
        self.env: dict[str, str] = {}
        self.workdir = root
        self.stages: set[str] = set()

    def rerooted(self, value: str) -> str:
        """An absolute path moved under the scratch root; anything else as it is."""
        if value.startswith("/"):
            return str(self.root / value.lstrip("/"))
        return value

    def run_stage(self, stage: Stage, *, run_steps: bool = True) -> list[str]:
        """Carry out a stage's steps; return the RUN commands it ran (or skipped)."""
        seen: list[str] = []
        self.env = {}  # ENV does not carry from one stage to the next
        self.workdir = self.root
        for step in stage.instructions:
            if step.keyword == "ENV":
                self._env(step)
            elif step.keyword == "WORKDIR":
                self.workdir = Path(self.rerooted(step.args))
                self.workdir.mkdir(parents=True, exist_ok=True)
            elif step.keyword == "COPY":
                self._copy(step)
            elif step.keyword == "RUN":
                seen.append(step.args)
                if run_steps:
                    self._run(step.args)
        if stage.name:
            self.stages.add(stage.name)
        return seen

    def _env(self, step: Instruction) -> None:
        for pair in shlex.split(step.args):
            key, _, value = pair.partition("=")
            parts = []
            for part in value.split(":"):
                if part == "$PATH":  # the PATH before, as Docker expands it (not re-rooted)
                    parts.append(self.env.get("PATH", self.path))
                else:
                    assert "$" not in part, f"ENV {key}: only $PATH is expanded here"
                    parts.append(self.rerooted(part))
            self.env[key] = ":".join(parts)

    def _copy(self, step: Instruction) -> None:
        *sources, dest = step.words()
        flags = dict(flag.removeprefix("--").partition("=")[::2] for flag in step.flags)
        source_root = self.context
        if "from" in flags:
            assert flags["from"] in self.stages, f"COPY --from={flags['from']}: no such stage yet"
            source_root = self.root  # every stage shares the scratch root
        target = Path(self.rerooted(dest)) if dest.startswith("/") else self.workdir / dest
        for source in sources:
            path = source_root / source.lstrip("/")
            into = target / path.name if dest.endswith("/") and path.is_file() else target
            if path.resolve() == into.resolve():
                continue  # what an earlier stage built, already where this one wants it
            into.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, into, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(path, into)
                if "chmod" in flags:
                    into.chmod(int(flags["chmod"], 8))

    def _run(self, command: str) -> None:
        env = {"PATH": self.path, "HOME": str(self.root / "root"), "LANG": "C.UTF-8"}
        env.update(self.outside)
        env.update(self.env)
        done = subprocess.run(
            ["sh", "-ec", command],
            cwd=self.workdir,
            env={**env, "TMPDIR": os.environ.get("TMPDIR", "/tmp")},
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        assert done.returncode == 0, f"RUN {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
