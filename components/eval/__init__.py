"""Evaluation: offline metrics + the promotion gate, and the pieces the online loop reuses
(judge, drift detectors, heuristic scores, PII redaction, preference export)."""
