"""Snakemake execution profiles installed by name (`snakemake --profile slurm`), adapted to a site.

Snakemake resolves a profile name in the working directory, then in the user's configuration folder
(`$XDG_CONFIG_HOME/snakemake`, default `~/.config/snakemake`), then in `/etc/xdg/snakemake`.
`install_profile` copies the profile shipped with tomoseg (`profiles/<name>/` of the repository, package
data in a wheel) there, with the site's partitions, account and GPU type written into it and every
comment kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import yaml

from tomoseg import __version__
from tomoseg.core.errors import InputError
from tomoseg.core.io import atomic_path

log = logging.getLogger(__name__)

PROFILE_NAMES = ("slurm", "local")
STATUS_COMMANDS = ("sacct", "squeue")
SITE_PROFILE_ROOT = Path("/etc/xdg/snakemake")  # Snakemake's site-wide profile folder (Linux)
# A file Snakemake would read as the profile (profile.yaml, config.yaml, config.v9+.yaml, ...).
# A Slurm partition, account or GPU type as it goes into the profile's YAML: a plain name, nothing YAML or a
# shell would read as syntax (anchors, aliases, tags, flow collections, quotes, comments, separators).
SLURM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_PROFILE_FILE = re.compile(r"(?:profile|config)(?:\.v\d+\+)?\.yaml")
_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<comment>#\s?)?(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


@dataclass(frozen=True)
class SlurmSite:
    """The site-specific values of the Slurm profile (None: keep the shipped value or comment)."""

    partition: str | None = None
    account: str | None = None
    gpu_partition: str | None = None
    gpu_type: str | None = None
    gpu_cpus: int | None = None
    status_command: str | None = None

    def options(self) -> list[str]:
        """The `tomoseg profile install` options that give these values."""
        argv: list[str] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                argv += [f"--{item.name.replace('_', '-')}", str(value)]
        return argv

    def is_empty(self) -> bool:
        """True when no value is set."""
        return not self.options()


# Where each SlurmSite value goes in profiles/slurm/config.yaml (the GPU keys sit under the `&gpu_job`
# anchor of etsam_stage1, which the other GPU rules reuse).
_SLURM_KEYS: dict[str, tuple[str, ...]] = {
    "partition": ("default-resources", "slurm_partition"),
    "account": ("default-resources", "slurm_account"),
    "gpu_partition": ("set-resources", "etsam_stage1", "slurm_partition"),
    "gpu_type": ("set-resources", "etsam_stage1", "gpu_model"),
    "gpu_cpus": ("set-resources", "etsam_stage1", "cpus_per_task"),
    "status_command": ("slurm-status-command",),
}


def user_profile_dir(name: str, environ: dict[str, str] | None = None) -> Path:
    """The folder Snakemake searches for profile `name` in the user's configuration (XDG rules)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "snakemake" / name


def shipped_profile(name: str) -> dict[str, str]:
    """The files of the profile shipped with tomoseg (file name -> text)."""
    _check_name(name)
    folder = resources.files("tomoseg") / "profiles" / name
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    }
    if "config.yaml" not in files:
        raise InputError(f"{folder}: no config.yaml (is the tomoseg installation complete?)")
    return files


def render_profile(name: str, site: SlurmSite | None = None) -> dict[str, str]:
    """The profile's files with the site's values written in and an `installed by` header."""
    site = site or SlurmSite()
    if name != "slurm" and not site.is_empty():
        raise InputError(f"profile {name!r} has no site options ({' '.join(site.options())} are for slurm)")
    _check_site(site)
    files = shipped_profile(name)
    text = files["config.yaml"]
    expected: dict[tuple[str, ...], object] = {}
    for attribute, path in _SLURM_KEYS.items():
        value = getattr(site, attribute)
        if value is not None:
            text = set_yaml_key(text, path, value)
            expected[path] = value
    parsed = yaml.safe_load(text)
    for path, value in expected.items():
        if _lookup(parsed, path) != value:  # the edit must have landed where Snakemake reads it
            raise InputError(f"profiles/{name}/config.yaml: could not set {'.'.join(path)} to {value!r}")
    command = shlex.join(["tomoseg", "profile", "install", name, *site.options()])
    header = (
        f"# Installed by tomoseg {__version__} with:\n#   {command}\n"
        f"# Use it as `snakemake --profile {name}`; edit this file for anything else about your site.\n\n"
    )
    files["config.yaml"] = header + text
    return files


def install_profile(
    name: str, site: SlurmSite | None = None, dest: str | os.PathLike | None = None, force: bool = False
) -> Path:
    """Write the site-adapted profile `name` to `dest` (default: the user's Snakemake profile folder).

    An existing different profile there is kept unless `force`; then each replaced file is kept as
    `<file>.bak`. Installing the same profile again changes nothing.
    """
    files = render_profile(name, site)
    folder = Path(dest) if dest is not None else user_profile_dir(name)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    changed = [f for f, text in files.items() if _read(folder / f) not in (None, text)]
    # another profile file there (profile.yaml, config.v9+.yaml) could be the one Snakemake reads
    others = [
        p.name
        for p in sorted(folder.glob("*.yaml"))
        if _PROFILE_FILE.fullmatch(p.name) and p.name not in files
    ]
    if (changed or others) and not force:
        raise InputError(
            f"{folder}: a different profile is installed there ({', '.join(changed + others)}); "
            "rerun with --force to replace it (the old files are kept as .bak), or choose --dest"
        )
    for stale in changed + others:
        os.replace(folder / stale, folder / f"{stale}.bak")
        log.warning("%s: replaced; the previous file is %s.bak", folder / stale, stale)
    for file_name, text in files.items():
        target = folder / file_name
        if _read(target) == text:
            continue
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    by_name = folder in (user_profile_dir(name), SITE_PROFILE_ROOT / name)
    usage = f"snakemake --profile {name if by_name else folder}"
    log.info("profile %r installed in %s; use it as `%s`", name, folder, usage)
    return folder


def set_yaml_key(text: str, path: tuple[str, ...], value: object) -> str:
    """Set the scalar at `path` in YAML `text`, line by line so every comment stays.

    The key's line is rewritten in place; a commented-out key (`# key: ...`) at the right place is
    uncommented. Raises InputError when neither exists.
    """
    lines = text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []  # (indentation, key) of the enclosing mappings
    commented: int | None = None
    for number, line in enumerate(lines):
        match = _KEY_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        indent = len(match["indent"])
        parents = tuple(key for level, key in stack if level < indent)
        if parents == path[:-1] and match["key"] == path[-1]:
            if not match["comment"]:
                lines[number] = _key_line(match["indent"], path[-1], value, line)
                return "".join(lines)
            if commented is None:
                commented = number
        if not match["comment"]:
            stack = [(level, key) for level, key in stack if level < indent] + [(indent, match["key"])]
    if commented is None:
        raise InputError(f"profile template has no key {'.'.join(path)} to set")
    match = _KEY_LINE.match(lines[commented].rstrip("\n"))
    assert match is not None
    lines[commented] = _key_line(match["indent"], path[-1], value, lines[commented])
    return "".join(lines)


def _key_line(indent: str, key: str, value: object, old: str) -> str:
    ending = "\n" if old.endswith("\n") else ""
    return f"{indent}{key}: {json.dumps(value)}{ending}"


def _lookup(tree: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _check_name(name: str) -> None:
    if name not in PROFILE_NAMES:
        raise InputError(f"unknown profile {name!r} (choose one of {', '.join(PROFILE_NAMES)})")


def _check_site(site: SlurmSite) -> None:
    for item in fields(site):
        value = getattr(site, item.name)
        if isinstance(value, str) and not SLURM_NAME.fullmatch(value):
            raise InputError(
                f"--{item.name.replace('_', '-')} {value!r}: expected a single Slurm name (letters, digits "
                "and _ . - only, as Slurm names partitions, accounts and GPU types)"
            )
    if site.gpu_cpus is not None and site.gpu_cpus < 1:
        raise InputError(f"--gpu-cpus {site.gpu_cpus}: must be at least 1")
    if site.status_command is not None and site.status_command not in STATUS_COMMANDS:
        raise InputError(f"--status-command {site.status_command!r}: choose {' or '.join(STATUS_COMMANDS)}")
