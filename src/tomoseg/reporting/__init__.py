"""Reporting: the paper's tables and figures from the metrics records, and the paper-statistics use case."""
