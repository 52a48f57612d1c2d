"""Batch: the nightly run over new CryoET Data Portal runs."""
