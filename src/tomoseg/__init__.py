"""tomoseg: ETSAM two-stage SAM2 membrane segmentation of cryo-ET tomograms, with baselines and evaluation."""

__version__ = "0.1.0"

METHODS = ("etsam", "etsam_stage1", "etsam_postprocessed", "membrain", "tardis")
"""Method names used in paths, tables and figures."""
