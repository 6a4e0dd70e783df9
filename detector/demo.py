"""`make demo`: the whole path offline, on the project's own demo logo.

Synthesizes a tile dataset of the demo brand, trains Inception v3 from scratch at a small input size
(no ImageNet weights can be downloaded here), evaluates it and prints the table. Each step prints the
`detect` command that does the same, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    from detector.data import scan_dataset
    from detector.evaluate import evaluate
    from detector.synth import TileSpec, write_tile_dataset
    from detector.tables import confusion_table, dataset_table, evaluation_table
    from detector.tfquiet import import_tensorflow_quietly
    from detector.train import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="demo-output")
    p.add_argument("--tiles", type=int, default=900, help="positive tiles (as many negatives)")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--minutes", type=float, default=6.0, help="training time budget")
    args = p.parse_args(argv)
    console = Console()
    import_tensorflow_quietly()
    out = Path(args.out)
    data, model = out / "data", out / "model"
    t0 = time.monotonic()

    console.rule("1. synthesize a tile dataset of the demo logo")
    if not (data / "no-logo").is_dir():
        write_tile_dataset(data, per_class=args.tiles, spec=TileSpec(size=args.input_size), seed=1)
    console.print(dataset_table(scan_dataset(data)))

    console.rule("2. train (from scratch: no ImageNet weights offline)")
    cmd = (
        f"detect train {data} --out {model} --weights none --input-size {args.input_size} "
        f"--cam-layer mixed7 --fine-tune all --fine-tune-epochs 20 --max-minutes {args.minutes:g}"
    )
    console.print(f"$ {cmd}", highlight=False)
    if (model / "model.json").is_file():
        console.print(f"{model} is already trained (delete it to train again)")
    else:
        train(
            TrainConfig(
                data=str(data),
                out=str(model),
                weights="none",
                input_size=args.input_size,
                cam_layer="mixed7",
                fine_tune="all",
                fine_tune_epochs=20,
                patience=4,
                max_minutes=args.minutes,
                resume=True,
            ),
            log=lambda s: console.print(s, highlight=False),
        )

    console.rule("3. evaluate on the held-out test split")
    console.print(f"$ detect evaluate {model} {data} --target-precision 0.95", highlight=False)
    res = evaluate(model, data, "test", target_precision=0.95)
    console.print(evaluation_table(res.report))
    console.print(confusion_table(res.report))
    console.print(f"PR curve: {res.pr_curve_path}\nreport:   {res.report_path}", highlight=False)
    console.print(f"demo finished in {(time.monotonic() - t0) / 60:.1f} min", highlight=False)


if __name__ == "__main__":
    main()
