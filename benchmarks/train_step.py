"""Time one `vgg_s` training step (forward, float32 loss, backward, AdamW step) in fp32
and in bfloat16 autocast, as `ferkit train --precision` runs it (`ferkit.train.step_ms`,
the median step): channels-last input,
random 40x40 crops, 7 classes. Prints ms per step and the implied seconds per FER2013
epoch (28,709 faces) for each width and batch size. Needs no data.

Session 13 (2-core Intel Xeon with AVX-512 BF16 and AMX, 2 threads), batch 64, fp32 /
bf16: 46.3 / 21.9 ms at widths 16-32-64-128, 111.4 / 56.1 ms at 32-64-128-256, 223.6 /
99.7 ms at 48-96-192-384; a rerun at the end of that session (10 timed steps) gave
47 / 32, 134 / 72 and 283 / 127 ms. A real epoch costs a few seconds more (augmentation, the val
pass, checkpoints): 31 s against 25 s implied for 32-64-128-256.

Session 14 (2-core AMD EPYC, Zen 3, AVX2, no native bf16; 20 timed steps, nothing else
running): fp32 / bf16 103.1 / 1070.5 ms, 299.1 / 4040.2 ms and 623.5 / 8157.3 ms: emulated
bf16 costs 10-13x fp32 there.

Session 15 (2-core Intel Xeon with AVX-512 BF16 but no AMX; three runs, nothing else
running: mean of 20 steps, then median of 20 and of 40 steps): fp32 / bf16 88.6 / 76.2,
65.9 / 75.4 and 52.0 / 68.1 ms at 16-32-64-128; 172.5 / 235.5, 178.0 / 242.1 and
173.1 / 218.4 ms at 32-64-128-256; 373.8 / 450.3, 451.5 / 423.1 and 301.9 / 442.8 ms at
48-96-192-384. Without AMX, bf16 costs 0.86-1.47x the fp32 step (1.26-1.37x at the
bundled width), and this machine's speed drifted by up to 1.7x between runs. `precision:
auto` (`ferkit train`) times both on the run's own model and keeps the faster.

Session 16 (2-core AMD EPYC, Zen 5, AVX-512 BF16, no AMX; nothing else running): bf16
is native and faster here. Batch 64: fp32 / bf16 46.1 / 26.4, 99.8 / 63.5 and
226.5 / 132.7 ms. Seconds per epoch in bf16 by batch 32 / 64 / 128 / 256: 12.3 / 11.8 /
7.7 / 8.3 at 16-32-64-128, 26.6 / 28.5 / 22.4 / 21.4 at 32-64-128-256, and 51.4 / 59.5 /
47.2 / 55.5 at 48-96-192-384. At the bundled width a batch of 128 buys about a quarter more
faces per second than 64 here, but real epochs of `configs/fast-bf16.yaml` were only about
9% shorter (26.6 against 29.2 s: the val pass and augmentation do not shrink with it).

Session 17 (2-core AMD EPYC, Zen 2, AVX2, no AVX-512; nothing else running), batch 64,
fp32 / bf16 (emulated): 136.3 / 1073.5, 424.7 / 4324.8 and 926.1 / 9661.3 ms: the slowest
machine yet, 3x session 16's fp32 step of the narrow network.

Session 22 (2-core AMD EPYC, Zen 4 (family 25, model 17), AVX-512 BF16, no AMX; nothing
else running), batch 64, fp32 / bf16: 52.7 / 36.7, 148.6 / 91.8 and 317.0 / 186.2 ms:
bf16 native and 0.59-0.70x fp32; a bf16 step 1.39-1.45x session 16's Zen 5, an fp32
step 1.14-1.49x.

Session 49 (2-core Intel Xeon @ 2.80 GHz with AVX-512 (VNNI, VBMI2) but neither AVX-512 BF16
nor AMX in /proc/cpuinfo; oneDNN still reports bf16 support, which it emulates; nothing else
running), batch 64, fp32 / bf16: 55.4 / 117.9, 175.3 / 415.2 and 312.1 / 877.0 ms: bf16
2.1-2.8x fp32, so `precision: auto` trains `configs/fast.yaml` in fp32 there (60 epochs of
it in 30 minutes, test 68.90%; docs/accuracy.md).

    python benchmarks/train_step.py --batch-sizes 64 128
"""

from __future__ import annotations

import argparse

import torch

from ferkit.models import create_model
from ferkit.train import step_ms

WIDTHS = ([16, 32, 64, 128], [32, 64, 128, 256], [48, 96, 192, 384])


def ms_per_step(widths, batch_size: int, bf16: bool, steps: int, warmup: int = 5) -> float:
    torch.manual_seed(0)
    model = create_model("vgg_s", num_classes=7, in_chans=1, input_size=48, widths=widths, crop=40,
                         dropout=0.2).to(memory_format=torch.channels_last)
    return step_ms(model, batch_size, 40, bf16, steps, warmup)


def _cpuinfo_flag(flag: str) -> bool | None:
    """Whether the Linux CPU flags list ``flag``; None where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    p.add_argument("--steps", type=int, default=20, help="timed steps per figure (after 5 warm-up steps)")
    args = p.parse_args()
    onednn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: None)()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: None)()  # a private query, as above
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 (native or emulated): {onednn}, "
          f"AVX-512 BF16 in /proc/cpuinfo: {_cpuinfo_flag('avx512_bf16')}, AMX: {amx}")
    print("| widths | batch | fp32 ms/step | bf16 ms/step | fp32 s/epoch | bf16 s/epoch |")
    print("|---|---|---|---|---|---|")
    for widths in WIDTHS:
        for bs in args.batch_sizes:
            f32, b16 = (ms_per_step(widths, bs, bf16, args.steps) for bf16 in (False, True))
            epoch = 28_709 / bs / 1000.0
            print(f"| {'-'.join(map(str, widths))} | {bs} | {f32:.1f} | {b16:.1f} | {f32 * epoch:.1f} | "
                  f"{b16 * epoch:.1f} |", flush=True)


if __name__ == "__main__":
    main()
