"""ETSAM training: both SAM2 stages fine-tuned on annotated tomograms of a runs sheet (`tomoseg train`).

The layer sits above the ETSAM engine and evaluation (it reuses the model builder, checkpoint format,
normalization, frame path, Stage 1 -> Stage 2 fusion and metrics) and below reporting. Submodules:
`settings` (presets, torch-free), `data` (runs-sheet rows, input checks, memory-mapped samples),
`prompts` (prompts sampled from the truth), `augment` (one transform for every frame of a sample),
`loss`, `optim` (AdamW groups, layer decay, cosine schedule), `loop` (SAM2's video forward over a sample,
checkpoints with exact resume) and `run` (both stages end to end, provenance).
"""
