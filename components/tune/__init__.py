"""Scaling experiments: Ray Tune sweeps of short pretraining runs and Chinchilla-style scaling-law fits."""
