"""Step kinds of the scaling stage (light: no torch/ray imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(
        name="tune.sweep",
        config="components.tune.config:SweepConfig",
        run="components.tune.steps:run_sweep",
        inputs=("tokens",),
        description="Scaling sweep on Ray Tune (IsoFLOP profiles or an N×D grid of short pretraining runs, "
                    "optional ASHA lr search), resumable; fits N_opt(C)/D_opt(C) and L(N,D) with bootstrap "
                    "intervals, checks a held-out run against the prediction; fit.json + PNG plots.",
        num_cpus=0,  # only drives Tune; the trials hold the CPUs
    ),
]
