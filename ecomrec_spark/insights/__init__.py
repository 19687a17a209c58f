"""Insights: analytics tables for Athena, review-text sentiment and the report."""
