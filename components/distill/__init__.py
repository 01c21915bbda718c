"""Draft-model distillation from a target model, for speculative decoding."""
