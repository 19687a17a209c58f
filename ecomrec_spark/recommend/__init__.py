"""Recommender: popularity baselines, filters, content-based and collaborative candidates, rules and metrics."""
