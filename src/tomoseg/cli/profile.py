"""`tomoseg profile install`: put the Slurm or workstation profile where `snakemake --profile NAME` finds it."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.core.profiles import PROFILE_NAMES, STATUS_COMMANDS, SlurmSite, install_profile


def _install(a: argparse.Namespace) -> int:
    site = SlurmSite(
        partition=a.partition,
        account=a.account,
        gpu_partition=a.gpu_partition,
        gpu_type=a.gpu_type,
        gpu_cpus=a.gpu_cpus,
        status_command=a.status_command,
    )
    install_profile(a.name, site, dest=a.dest, force=a.force)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `profile` sub-command."""
    p = sub.add_parser(
        "profile",
        help="install the Snakemake profile for Slurm or one machine, used as `snakemake --profile NAME`",
        description="Snakemake finds a profile given by name in $XDG_CONFIG_HOME/snakemake/NAME "
        "(default ~/.config/snakemake/NAME) or /etc/xdg/snakemake/NAME. See docs/cluster.md.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = actions.add_parser(
        "install",
        help="write the profile, with your site's values, to ~/.config/snakemake/NAME",
        description="Write tomoseg's profile NAME, with the site's values given here written into it "
        "(comments kept), to ~/.config/snakemake/NAME (respecting $XDG_CONFIG_HOME). A different "
        "profile already there is kept unless --force.",
    )
    install.add_argument("name", choices=PROFILE_NAMES, help="slurm (cluster) or local (one machine)")
    slurm = install.add_argument_group("site values (slurm only; left out: the shipped profile's)")
    slurm.add_argument("--partition", help="CPU partition (`sinfo -s`)")
    slurm.add_argument("--account", help="Slurm account, only where the cluster requires one")
    slurm.add_argument("--gpu-partition", help="partition of the four GPU rules")
    slurm.add_argument(
        "--gpu-type", help="GPU model from gres.conf, sent as --gpus=TYPE:1 (default: any GPU)"
    )
    slurm.add_argument("--gpu-cpus", type=int, metavar="N", help="CPUs per GPU job (default 4)")
    slurm.add_argument(
        "--status-command",
        choices=STATUS_COMMANDS,
        help="how job status is read; squeue on clusters without slurmdbd (default: the plugin's choice)",
    )
    install.add_argument(
        "--dest", type=Path, metavar="DIR", help="profile folder (default ~/.config/snakemake/NAME)"
    )
    install.add_argument(
        "--force", action="store_true", help="replace a different profile there (old files kept as .bak)"
    )
    install.set_defaults(func=_install)
