"""tomoseg: ETSAM two-stage SAM2 membrane segmentation of cryo-ET tomograms, with baselines and evaluation.

The package is layered (see CONTRIBUTING.md): cli > batch > reporting > evaluation > the stages
(acquisition, etsam, baselines; then preprocess) > core. Imports point downwards only.
"""

__version__ = "0.1.0"
