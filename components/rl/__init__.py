"""Preference and reward learning: GRPO with vLLM rollouts, DPO, a Bradley-Terry reward model."""
