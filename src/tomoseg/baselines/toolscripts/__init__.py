"""Stand-alone scripts that run inside a baseline tool's own environment (by path, never imported).

Each script imports only the tool, torch, numpy and the standard library, and writes one JSON object
to the file named by its --result option, which `tomoseg.baselines.driver.run_driver` reads.
"""
