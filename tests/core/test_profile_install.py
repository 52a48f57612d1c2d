"""Profiles installed by name: site values written in with comments kept, XDG folders, no silent overwrite."""

from __future__ import annotations

import pytest
import yaml

from tomoseg.cli import main
from tomoseg.core.errors import InputError
from tomoseg.core.profiles import (
    SlurmSite,
    install_profile,
    render_profile,
    set_yaml_key,
    shipped_profile,
    user_profile_dir,
)

SITE = SlurmSite(
    partition="batch",
    account="lab1",
    gpu_partition="gpu-a100",
    gpu_type="a100",
    gpu_cpus=8,
    status_command="squeue",
)


def test_site_values_land_where_snakemake_reads_them_and_comments_stay():
    shipped = shipped_profile("slurm")["config.yaml"]
    text = render_profile("slurm", SITE)["config.yaml"]
    profile = yaml.safe_load(text)
    assert profile["default-resources"]["slurm_partition"] == "batch"
    assert profile["default-resources"]["slurm_account"] == "lab1"
    assert profile["slurm-status-command"] == "squeue"
    for rule in ("etsam_stage1", "etsam_stage2", "membrain", "tardis"):  # all through the anchor
        routing = profile["set-resources"][rule]
        assert routing["slurm_partition"] == "gpu-a100"
        assert routing["gpu_model"] == "a100"
        assert routing["cpus_per_task"] == 8
    # every other line is the shipped one: comments and keys unchanged
    header, body = text.split("\n\n", 1)
    assert "tomoseg profile install slurm --partition batch --account lab1" in header
    pairs = list(zip(body.splitlines(), shipped.splitlines(), strict=True))
    assert len([new for new, old in pairs if new != old]) == 6


def test_without_site_values_the_profile_is_the_shipped_one():
    text = render_profile("slurm")["config.yaml"]
    assert yaml.safe_load(text) == yaml.safe_load(shipped_profile("slurm")["config.yaml"])
    assert set(render_profile("slurm")) == {"config.yaml", "partitions.example.yaml"}


def test_set_yaml_key_edits_only_the_key_at_its_path():
    text = "a:\n  x: 1\n  # y: 2\nb:\n  x: 3\n  # x is a comment: not a key\n"
    assert set_yaml_key(text, ("b", "x"), 4) == text.replace("  x: 3", "  x: 4")
    assert set_yaml_key(text, ("a", "y"), "v") == text.replace("  # y: 2", '  y: "v"')
    with pytest.raises(InputError, match="no key b.y"):
        set_yaml_key(text, ("b", "y"), 1)


@pytest.mark.parametrize(
    ("site", "message"),
    [
        (SlurmSite(partition="two words"), "single Slurm name"),
        (SlurmSite(gpu_type='a100"\nexecutor: local'), "single Slurm name"),
        # issue 21, item 7: names are names; YAML syntax (alias, anchor, tag, flow) or a path is not one
        (SlurmSite(partition="*gpu"), "single Slurm name"),
        (SlurmSite(account="&anchor"), "single Slurm name"),
        (SlurmSite(gpu_partition="!!python/object:os.system"), "single Slurm name"),
        (SlurmSite(gpu_type="[a100,h100]"), "single Slurm name"),
        (SlurmSite(account="{x}"), "single Slurm name"),
        (SlurmSite(partition="../x"), "single Slurm name"),
        (SlurmSite(partition="gpu|cpu"), "single Slurm name"),
        (SlurmSite(gpu_cpus=0), "at least 1"),
        (SlurmSite(status_command="scontrol"), "sacct or squeue"),
    ],
)
def test_bad_site_values_are_refused(site, message):
    with pytest.raises(InputError, match=message):
        render_profile("slurm", site)


def test_local_profile_takes_no_slurm_values():
    with pytest.raises(InputError, match="no site options"):
        render_profile("local", SlurmSite(partition="cpu"))


def test_user_profile_dir_follows_xdg_like_snakemake():
    assert user_profile_dir("slurm", {"HOME": "/h"}).as_posix() == "/h/.config/snakemake/slurm"
    assert (
        user_profile_dir("slurm", {"HOME": "/h", "XDG_CONFIG_HOME": "/x"}).as_posix() == "/x/snakemake/slurm"
    )
    # an empty or relative XDG_CONFIG_HOME is ignored, as platformdirs (Snakemake's lookup) ignores it
    assert user_profile_dir("local", {"HOME": "/h", "XDG_CONFIG_HOME": ""}).as_posix() == (
        "/h/.config/snakemake/local"
    )
    assert user_profile_dir("local", {"HOME": "/h", "XDG_CONFIG_HOME": "rel"}).as_posix() == (
        "/h/.config/snakemake/local"
    )
    platformdirs = pytest.importorskip("platformdirs")
    assert (
        user_profile_dir("x").parent.as_posix()
        == platformdirs.AppDirs("snakemake", "snakemake").user_config_dir
    )


def test_install_refuses_a_different_profile_without_force(tmp_path):
    dest = tmp_path / "slurm"
    install_profile("slurm", SITE, dest=dest)
    first = (dest / "config.yaml").read_text()
    install_profile("slurm", SITE, dest=dest)  # the same profile again: nothing changes
    assert (dest / "config.yaml").read_text() == first and not list(dest.glob("*.bak"))
    with pytest.raises(InputError, match="different profile is installed"):
        install_profile("slurm", SlurmSite(partition="other"), dest=dest)
    assert (dest / "config.yaml").read_text() == first
    install_profile("slurm", SlurmSite(partition="other"), dest=dest, force=True)
    assert (dest / "config.yaml.bak").read_text() == first
    assert (
        yaml.safe_load((dest / "config.yaml").read_text())["default-resources"]["slurm_partition"] == "other"
    )


def test_install_refuses_when_another_profile_file_would_win(tmp_path):
    dest = tmp_path / "local"
    dest.mkdir()
    (dest / "profile.yaml").write_text("cores: 1\n")
    with pytest.raises(InputError, match=r"profile\.yaml"):
        install_profile("local", dest=dest)
    install_profile("local", dest=dest, force=True)
    assert not (dest / "profile.yaml").exists() and (dest / "profile.yaml.bak").exists()


def test_cli_installs_into_the_xdg_config_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    argv = ["profile", "install", "slurm", "--partition", "batch", "--gpu-partition", "gpu1"]
    assert main(argv) == 0
    installed = yaml.safe_load((tmp_path / "xdg" / "snakemake" / "slurm" / "config.yaml").read_text())
    assert installed["set-resources"]["tardis"]["slurm_partition"] == "gpu1"
    assert main([*argv[:-1], "gpu2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["profile", "install", "local", "--dest", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "config.yaml").exists()


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        assert not repeated, f"line {node.start_mark.line + 1}: keys given twice: {repeated}"
        return super().construct_mapping(node, deep=deep)


@pytest.mark.parametrize("name", ["slurm", "local"])
def test_shipped_profiles_give_each_key_once(name):
    """Issue 22: the Slurm profile listed the shard rules' resources twice."""
    files = {k: v for k, v in shipped_profile(name).items() if k.endswith((".yaml", ".yml"))}
    assert files
    for text in files.values():
        yaml.load(text, Loader=_UniqueKeyLoader)
