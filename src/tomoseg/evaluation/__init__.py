"""Scoring: metrics and score histograms, post-processing, and the paired statistics of the paper."""
