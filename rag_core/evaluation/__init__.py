"""Evaluation: labeled question sets, the metrics that score answers and retrieval against
them, and the runs that record those scores."""
