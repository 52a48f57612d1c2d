"""The bottom layer: validated I/O and atomic writes, errors, provenance, HTTP fetching, script logging,
the method registry and the results-tree layout. Imports nothing else from tomoseg."""
