"""The pinned dependencies (`make lock`): requirements.lock holds the runtime dependencies that the
image build installs, requirements-dev.lock those plus the dev extra, which make venv (so make run,
make test and CI) installs with --require-hashes. Both must pin every dependency pyproject.toml names,
at a version its range admits, each with its hashes; the dev lock must agree with the runtime lock;
and the environment running these tests must be the locked one."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RELOCK = "pyproject.toml changed without `make lock`"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ;.*)?(?: \\)?$")


def _pins(path: Path) -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes), from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match[1])
            assert current not in pins, f"{path.name}: {current} pinned twice"
            pins[current] = (Version(match[2]), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith(("#", " ")):
            pytest.fail(f"{path.name}: not a pin, hash or comment: {line!r}")
    return pins


RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]


def _check_covered(requirements: list[Requirement], pins: dict[str, tuple[Version, int]], lock: str) -> None:
    missing = [str(r) for r in requirements if canonicalize_name(r.name) not in pins]
    assert missing == [], f"{lock} lacks {missing}: {RELOCK}"
    outside = {
        str(r): str(pins[canonicalize_name(r.name)][0])
        for r in requirements
        if not r.specifier.contains(pins[canonicalize_name(r.name)][0], prereleases=True)
    }
    assert outside == {}, f"{lock} pins versions pyproject.toml's ranges refuse: {outside} ({RELOCK})"


def test_runtime_lock_pins_every_runtime_dependency_within_its_range() -> None:
    _check_covered(RUNTIME, _pins(LOCK), LOCK.name)


def test_dev_lock_pins_runtime_dev_and_build_dependencies_within_their_ranges() -> None:
    """The build backend is in it too: make venv installs the project with --no-build-isolation."""
    pins = _pins(DEV_LOCK)
    _check_covered(RUNTIME + DEV + BUILD, pins, DEV_LOCK.name)


def test_extras_of_locked_dependencies_are_locked() -> None:
    """testcontainers[postgres,rabbitmq]: what each named extra requires is pinned too."""
    pins = _pins(DEV_LOCK)
    for requirement in RUNTIME + DEV:
        if not requirement.extras:
            continue
        dist = metadata.distribution(requirement.name)
        for raw in dist.requires or []:
            needed = Requirement(raw)
            wanted = any(
                needed.marker is not None and needed.marker.evaluate({"extra": extra})
                for extra in requirement.extras
            )
            if wanted:
                assert canonicalize_name(needed.name) in pins, f"{requirement}: {needed} not locked"


def test_dev_lock_keeps_the_runtime_locks_versions_and_every_pin_has_hashes() -> None:
    runtime, dev = _pins(LOCK), _pins(DEV_LOCK)
    assert runtime.keys() <= dev.keys(), f"only in {LOCK.name}: {sorted(runtime.keys() - dev.keys())}"
    differing = {name: (str(v), str(dev[name][0])) for name, (v, _) in runtime.items() if dev[name][0] != v}
    assert differing == {}, f"run `make lock`: the locks disagree on {differing}"
    unhashed = [name for lock in (runtime, dev) for name, (_, hashes) in lock.items() if hashes == 0]
    assert unhashed == [], f"pins without hashes: {unhashed}"


def test_this_environment_is_the_locked_one() -> None:
    """What make test runs with is what the lock says (make venv reinstalls when the lock changes)."""
    differing = {}
    for name, (version, _) in _pins(DEV_LOCK).items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differing[name] = (str(version), str(installed))
    assert differing == {}, f"locked vs installed (run `make venv`): {differing}"


def test_makefile_and_dockerfile_install_with_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert stamp, "no $(STAMP) rule"
    assert "--require-hashes -r $(DEV_LOCK)" in stamp[1]
    assert re.search(r"^DEV_LOCK\s*:?=\s*requirements-dev\.lock$", makefile, re.MULTILINE)
    assert re.search(r"^LOCK\s*:?=\s*requirements\.lock$", makefile, re.MULTILINE)
    dockerfile = re.sub(r"\\\n", " ", (ROOT / "deploy/Dockerfile").read_text())
    builder = dockerfile.split(" AS builder", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"pip wheel [^\n]*--require-hashes -r \S*requirements\.lock", builder)
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text().splitlines()
