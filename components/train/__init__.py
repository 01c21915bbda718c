"""Pretraining: one training function (``loop.train``) run bare or under Ray Train.

Bare, one process (a GPU box without Ray, a debugger)::

    from components.train.loop import train
    train({"model": {"preset": "base"}, "strategy": "fsdp2", "num_steps": 100}, tokens_dir, out_dir)

Under Ray Train (what the ``train.pretrain`` step does)::

    from components.train.steps import build_trainer
    build_trainer(PretrainConfig(num_workers=2, strategy="deepspeed", zero_stage=3), tokens_dir, out_dir).fit()

Files: ``config`` (the step's config), ``device`` (cuda/cpu, nccl/gloo, bf16/fp32, peaks),
``data`` (memory-mapped shards, per-rank order), ``parallel`` (DDP / FSDP2 / ZeRO wrapping),
``checkpoint`` (DCP or DeepSpeed checkpoints, resume), ``flops`` (MFU), ``export`` (HF dir),
``loop`` (the function), ``steps`` (the flow step around TorchTrainer).
"""
