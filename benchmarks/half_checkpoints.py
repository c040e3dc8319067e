"""Carry training checkpoints through a size limit: float16 copies of runs' ``best.pt`` and
back (session 33: a GPU machine returns at most 64 MiB, 16 MiB a file; the wide network's
``best.pt`` is 23.3 MB, its float16 copy 11.7 MB).

    python benchmarks/half_checkpoints.py half RUNS_DIR OUT_DIR [--data PACK]
        every RUNS_DIR/*/best.pt -> OUT_DIR/<run>.pt: float tensors rounded to float16,
        nothing but the weights and metadata; with --data, prints each run's one-pass val
        accuracy with the float32 and with the rounded weights (on a GPU if there is one)
    python benchmarks/half_checkpoints.py widen RUNS_DIR FILE.pt ...
        each FILE.pt -> RUNS_DIR/<stem>/best.pt, a ferkit checkpoint in float32 (the
        rounded values widened; every figure of such a network is measured on these)
"""
import argparse
from pathlib import Path

import torch

from ferkit.checkpoint import load_checkpoint


def _cast(state: dict, dtype) -> dict:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def half(runs: Path, out: Path, data: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if data:
        from ferkit.data import load_fer2013
        from ferkit.preprocess import Preprocessing
        from ferkit.train import predict_logits
        val = load_fer2013(data).splits["val"]
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for best in sorted(runs.glob("*/best.pt")):
        model, ckpt = load_checkpoint(best)
        rounded = _cast(ckpt["state_dict"], torch.float16)
        note = ""
        if data:
            pre, accs = Preprocessing.from_dict(ckpt["preprocessing"]), []
            for state in (ckpt["state_dict"], _cast(rounded, torch.float32)):
                model.load_state_dict(state)
                model.to(device)
                accs.append(float((predict_logits(model, val.images, pre).argmax(1) == val.targets).mean()))
            note = f": one-pass val float32 {accs[0]:.4f}, float16-rounded {accs[1]:.4f}"
        torch.save({**{k: v for k, v in ckpt.items() if k != "state_dict"}, "state_dict": rounded},
                   out / f"{best.parent.name}.pt")
        print(f"{best} (epoch {ckpt['epoch']}) -> {out / best.parent.name}.pt{note}", flush=True)


def widen(runs: Path, files: list[Path]) -> None:
    for f in files:
        ckpt = torch.load(f, map_location="cpu", weights_only=False)
        ckpt["state_dict"] = _cast(ckpt["state_dict"], torch.float32)
        dst = runs / f.stem / "best.pt"
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, dst)
        load_checkpoint(dst)  # checks that it rebuilds
        print(f"{f} -> {dst} (epoch {ckpt['epoch']}, val {ckpt['val_acc']:.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("half")
    h.add_argument("runs", type=Path)
    h.add_argument("out", type=Path)
    h.add_argument("--data")
    w = sub.add_parser("widen")
    w.add_argument("runs", type=Path)
    w.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args()
    half(args.runs, args.out, args.data) if args.cmd == "half" else widen(args.runs, args.files)


if __name__ == "__main__":
    main()
