"""Test-only code (the upstream SAM2 reference path, synthetic masks); nothing else in tomoseg imports it."""
