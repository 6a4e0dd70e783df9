"""The Ray engine's settings, declared once (the CLI's `--address`, `--actors`, ... come from here).

Kept apart from detector.engines.ray_engine so that building the CLI never imports Ray: these are
plain values, checked like every other option, whether Ray is installed or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.options import check_fields, option

MAX_ACTORS = 100_000


@dataclass(frozen=True)
class RayOptions:
    """Where a `--engine ray` scan runs and how its work is cut (ignored by the local engine).

    Example:
        >>> RayOptions(address="auto", actors=16).actors
        16
    """

    address: str | None = option(
        None,
        "--engine ray: the cluster to join ('auto': the one running on this machine, HOST:PORT, or "
        "ray://HOST:10001); default: start one on this machine, sized to it.",
    )
    actors: int | None = option(
        None,
        "--engine ray: scanning actors (each opens the model once); default: cluster CPUs / --actor-cpus.",
        range=(1, MAX_ACTORS),
    )
    actor_cpus: int = option(1, "--engine ray: CPUs (and model threads) per actor.", range=(1, 256))
    actor_gpus: float = option(
        0.0,
        "--engine ray: GPUs per actor (0.25: four actors share one); onnxruntime then runs on CUDA/TensorRT.",
        range=(0.0, 64.0),
    )
    ray_batch_size: int = option(
        8, "--engine ray: images per actor call, the unit a killed actor's retry scans again.", range=(1, 4096)
    )

    def __post_init__(self) -> None:
        check_fields(self)
