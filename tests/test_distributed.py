"""Data-parallel training under torchrun: two real processes on this CPU, talking over
Gloo, as a cluster's nodes would (``ferkit.distributed``)."""

import csv
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def torchrun(*args, timeout=300):
    return subprocess.run([*TORCHRUN, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=timeout)


def test_two_processes_train_one_run_that_one_process_resumes(tiny_csv, tmp_path):
    out, teacher = tmp_path / "run", tmp_path / "teacher.npy"
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=56).astype(np.float32)
    np.save(teacher, probs)  # a teacher's table of the 56 train faces: rank 0 reads it and sends it on
    r = torchrun("-m", "ferkit.cli", "train", "--data", tiny_csv, "--epochs", 2, "--batch-size", 8,
                 "--optimizer", "adamw", "--lr", 0.003, "--out", out, "--no-progress", "--seed", 1,
                 "--teacher", teacher)
    assert r.returncode == 0, r.stderr
    assert "2 processes of 4 faces a batch" in r.stdout
    assert np.array_equal(np.load(out / "teacher_probs.npy"), probs)
    assert r.stdout.count("epoch 1/2:") == 1 and r.stdout.count("best val accuracy") == 1  # rank 0 speaks
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    # train accuracy counts both processes' faces: 56 a epoch, 28 each
    assert all(abs(float(row["train_acc"]) * 56 - round(float(row["train_acc"]) * 56)) < 1e-6 for row in rows)
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 2 and state["config"]["batch_size"] == 8

    r = subprocess.run([sys.executable, "-m", "ferkit.cli", "train", "--data", str(tiny_csv), "--epochs", "3",
                        "--batch-size", "8", "--optimizer", "adamw", "--lr", "0.003", "--out", str(out),
                        "--no-progress", "--seed", "1", "--threads", "1", "--resume", "--teacher", str(teacher)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "faces a batch" not in r.stdout
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 3


def test_two_processes_take_the_same_steps_as_one(tiny_csv, tmp_path):
    """Without batch norm and augmentation, two processes of 4 faces a batch must reach the
    weights one process reaches with batches of 8: same order, averaged gradients, one
    schedule. A model without batch norm is registered for it (batch norm normalises each
    process's share, so there the two differ by design)."""
    script = tmp_path / "linear_run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import torch
        from ferkit.models import register_model
        from ferkit.train import TrainConfig, train

        @register_model
        def linear_probe(num_classes=7, in_chans=1, input_size=48, **kwargs):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_chans * input_size ** 2, num_classes))

        train(TrainConfig(data={str(tiny_csv)!r}, out=sys.argv[1], model="linear_probe", epochs=3, batch_size=8,
                          optimizer="sgd", lr=0.0005, rotate=0.0, shift=0.0, scale=0.0, flip=False, erase=0.0,
                          precision="fp32", threads=1, seed=3), progress=False)
    """))
    r = torchrun(script, tmp_path / "two")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    two, one = (torch.load(tmp_path / name / "last.pt", map_location="cpu", weights_only=False)
                for name in ("two", "one"))
    for key in one["state_dict"]:
        assert torch.allclose(two["state_dict"][key], one["state_dict"][key], rtol=1e-4, atol=1e-6), key
    losses = [[h["train_loss"] for h in run["history"]] for run in (two, one)]
    assert losses[1][-1] < losses[1][0]  # it learned, so equal weights are not equal starting points
    assert all(abs(a - b) < 1e-4 for a, b in zip(*losses))


def test_a_process_whose_weights_drifted_is_named(tmp_path):
    script = tmp_path / "drift.py"
    script.write_text(textwrap.dedent("""
        import torch
        from ferkit.distributed import join_process_group

        ranks, _ = join_process_group(torch.device("cpu"))
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        ranks.check_same(model, "before the drift")
        if ranks.rank == 1:
            with torch.no_grad():
                model.weight[0, 0] += 1e-3
        try:
            ranks.check_same(model, "after the drift")
        except RuntimeError as exc:
            print(f"rank {ranks.rank}: {exc}")
        ranks.close()
    """))
    r = torchrun(script)
    assert r.returncode == 0, r.stderr
    for rank in (0, 1):
        assert f"rank {rank}: the weights of rank 1 differ from rank 0's after the drift" in r.stdout
    assert "before the drift" not in r.stdout


def test_a_batch_the_processes_cannot_share_is_refused(tiny_csv, tmp_path):
    r = torchrun("-m", "ferkit.cli", "train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 7,
                 "--out", tmp_path / "run", "--no-progress")
    assert r.returncode != 0
    assert "2 processes need a batch size they can share equally" in r.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_the_fp32_recipe_choice_is_refused_to_several_cpu_processes(tiny_csv, tmp_path):
    recipe = tmp_path / "auto.yaml"
    (tmp_path / "fp32.yaml").write_text("batch_size: 8\n")
    recipe.write_text("precision: auto\nfp32_recipe: fp32.yaml\nbatch_size: 8\nepochs: 1\n")
    r = torchrun("-m", "ferkit.cli", "train", "--config", recipe, "--data", tiny_csv, "--device", "cpu",
                 "--out", tmp_path / "run", "--no-progress")
    assert r.returncode != 0
    assert "2 processes could pick differently" in r.stderr and "--precision bf16" in r.stderr
