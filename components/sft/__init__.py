"""Supervised fine-tuning: instruction data from the corpus, LoRA/QLoRA SFT on Ray Train."""
