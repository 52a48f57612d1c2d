"""A local-filesystem copick project made with copick's own API, for the copick tests."""

from __future__ import annotations

from pathlib import Path


def new_project(folder: Path, name: str) -> Path:
    """Write the config of an empty copick project under `folder` (one non-particle object `membrane`); its path."""
    from copick.impl.filesystem import CopickConfigFSSpec
    from copick.models import PickableObject

    config = CopickConfigFSSpec(
        name=name,
        overlay_root=f"local://{folder / 'overlay'}",
        overlay_fs_args={"auto_mkdir": True},
        pickable_objects=[PickableObject(name="membrane", is_particle=False, label=1)],
        user_id="someone",
    )
    path = folder / "copick.json"
    path.write_text(config.model_dump_json(indent=2))
    return path
