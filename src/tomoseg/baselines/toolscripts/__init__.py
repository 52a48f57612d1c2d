"""Stand-alone scripts that run inside a baseline tool's own environment (by path, never imported).

Each script imports only the tool, torch, numpy and the standard library, and prints one JSON object
as its last line of standard output, which `tomoseg.baselines.runner` parses.
"""
