# ferkit: set-up, demo, tests and the recipes that make the bundled model.
# Every target creates .venv (Python 3.11) on first use and installs what it needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/datasets/fer2013

.PHONY: demo test browser serve install train train-gpu train-gen2 train-finetune train-finetune2 train-finetune3 train-lowres bundle-small-faces roll camera train-finetune-wide41 train-gpu-members train-fast test-fast train-restart train-stages member bundle bundle-default-int8 bundle-int8 bundle-ensemble bundle-ensemble-s24 bundle-ensemble-s8 evaluate benchmark report speed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime + matplotlib (the demo photo ships with it).
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[demo]"
	touch $@

# Everything: training, evaluation, export, tests.
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

## demo: install ferkit and find the emotions in a real photo with the bundled model
demo: $(VENV)/.demo
	$(BIN)/ferkit demo --annotate runs/demo
	@echo "annotated photo: runs/demo/grace_hopper.jpg"

## test: install the test dependencies and run the whole suite
test: $(VENV)/.test
	$(BIN)/python -m pytest

## browser: Debian's Chromium for the browser tests (root; they skip without it, unless FERKIT_REQUIRE_BROWSER=1)
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

## serve: the web app on http://localhost:8000/ (live camera page, photo upload, API)
serve: $(VENV)/.test
	$(BIN)/ferkit serve

install: $(VENV)/.test

## train: the bundled default's recipe of sessions 11-23 (the CPU recipe): configs/distill-wide.yaml, vgg_s 32-64-128-256 on 40 px crops distilled from the bundled ensemble (110 min + the teacher's pass; resumes if interrupted)
train: $(VENV)/.test
	$(BIN)/ferkit train --config configs/distill-wide.yaml --data $(DATA) $(if $(wildcard runs/distill-wide/last.pt),--resume)

## train-fast: the fast recipe on a CPU with fast native bf16 (AMX, or AMD Zen 5: session 16, 69.63%; Zen 4: session 22, 69.27% exported with --tta scales; session 27, 70.05% and 70.38% read by make test-fast): configs/fast-bf16.yaml, 30 min, bf16 where it times faster than fp32 (precision: auto); where fp32 is faster (a Xeon without AMX, any CPU without AVX-512 BF16) the recipe trains configs/fast.yaml instead (its fp32_recipe; session 15: the wide network in fp32 had a third of the epochs and 65.28%, configs/fast.yaml 67.65%; session 49, a Xeon without AVX-512 BF16 or AMX: configs/fast.yaml 68.90%, with random erasing, kept on val, 68.71% and 69.52%; session 50, the same Xeon, with batch 128 too, kept on val, 69.24% and 69.21%; session 51, a third seed, 68.04%: three runs, mean 68.83%)
train-fast: $(VENV)/.test
	$(BIN)/ferkit train --config configs/fast-bf16.yaml --data $(DATA) $(if $(wildcard runs/fast-bf16/last.pt),--resume)

## test-fast: after make train-fast, val chooses its checkpoint (best.pt, the best one-pass val epoch, or last.pt) and TTA (benchmarks/val_choices.py --out), then one evaluation of that choice on test (PrivateTest) into runs/fast-bf16/test
test-fast: $(VENV)/.test
	$(BIN)/python benchmarks/val_choices.py runs/fast-bf16/best.pt runs/fast-bf16/last.pt --data $(DATA) --out runs/fast-bf16/chosen.onnx
	$(BIN)/ferkit evaluate --model runs/fast-bf16/chosen.onnx --data $(DATA) --split test --out runs/fast-bf16/test

## train-stages: the four stages of the stage-4 default of sessions 7-9 (the ensemble's first member) on FER2013 (each resumes if interrupted)
train-stages: $(VENV)/.test
	$(BIN)/ferkit train --config configs/default.yaml --data $(DATA) $(if $(wildcard runs/default/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-finetune.yaml --data $(DATA) $(if $(wildcard runs/default-ft/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-restart.yaml --data $(DATA) $(if $(wildcard runs/default-restart/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-polish.yaml --data $(DATA) $(if $(wildcard runs/default-polish/last.pt),--resume)

## member: the same four stages from other seeds (SEED, SEED+1, ...) into OUT, an independent network for ensembles (make member SEED=10 OUT=runs/m10; each stage resumes)
SEED := 10
OUT   = runs/m$(SEED)
member: $(VENV)/.test
	$(BIN)/ferkit train --config configs/default.yaml --data $(DATA) --seed $(SEED) --out $(OUT)/default $(if $(wildcard $(OUT)/default/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-finetune.yaml --data $(DATA) --seed $$(($(SEED) + 1)) --init $(OUT)/default/best.pt --out $(OUT)/default-ft $(if $(wildcard $(OUT)/default-ft/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-restart.yaml --data $(DATA) --seed $$(($(SEED) + 2)) --init $(OUT)/default-ft/best.pt --out $(OUT)/default-restart $(if $(wildcard $(OUT)/default-restart/last.pt),--resume)
	$(BIN)/ferkit train --config configs/default-polish.yaml --data $(DATA) --seed $$(($(SEED) + 3)) --init $(OUT)/default-restart/best.pt --out $(OUT)/default-polish $(if $(wildcard $(OUT)/default-polish/last.pt),--resume)

## teacher2: session 24's teacher, session 20's bundled default and the bundled ensemble averaged (from git history: needs a clone)
runs/teacher2/teacher.onnx: $(VENV)/.test
	mkdir -p runs/teacher2
	git show 3e37cff:src/ferkit/weights/default.onnx > runs/teacher2/default.onnx
	git show 3e37cff:src/ferkit/weights/default.json > runs/teacher2/default.json
	git show 3e37cff:src/ferkit/weights/ensemble.onnx > runs/teacher2/ensemble.onnx
	git show 3e37cff:src/ferkit/weights/ensemble.json > runs/teacher2/ensemble.json
	$(BIN)/ferkit ensemble runs/teacher2/default.onnx runs/teacher2/ensemble.onnx --out runs/teacher2/teacher.onnx

## teacher3: session 28's teacher, session 24's bundled default and bundled ensemble averaged (the bundled weights of commit 9eac22a, from git history: needs a clone, not a source archive)
runs/teacher3/teacher.onnx: $(VENV)/.test
	mkdir -p runs/teacher3
	for f in default.onnx default.json ensemble.onnx ensemble.json; do git show 9eac22a:src/ferkit/weights/$$f > runs/teacher3/$$f; done
	$(BIN)/ferkit ensemble runs/teacher3/default.onnx runs/teacher3/ensemble.onnx --out runs/teacher3/teacher.onnx

## teacher4: session 31's teacher, session 30's bundled default and session 24's bundled ensemble averaged (the bundled weights of commit ea12a90, from git history: needs a clone, not a source archive)
runs/teacher4/teacher.onnx: $(VENV)/.test
	mkdir -p runs/teacher4
	for f in default.onnx default.json ensemble.onnx ensemble.json; do git show ea12a90:src/ferkit/weights/$$f > runs/teacher4/$$f; done
	$(BIN)/ferkit ensemble runs/teacher4/default.onnx runs/teacher4/ensemble.onnx --out runs/teacher4/teacher.onnx

## default-s31: the bundled default of sessions 31-38 (the weights of commit 09bab67, from git history: needs a clone, not a source archive), the starting point and teacher of train-lowres
runs/default-s31/default.onnx:
	mkdir -p runs/default-s31
	for f in default.onnx default.json; do git show 09bab67:src/ferkit/weights/$$f > runs/default-s31/$$f; done

## train-lowres: session 38's small-face network: session 31's default fine-tuned with half its train faces shrunk to 12-47 px and enlarged back, distilled from itself on the sharp faces (configs/wide-lowres.yaml: 30 min in bf16 + the teacher's pass, about 6 min; resumes if interrupted); then make bundle-small-faces
train-lowres: $(VENV)/.test runs/default-s31/default.onnx
	$(BIN)/ferkit train --config configs/wide-lowres.yaml --data $(DATA) $(if $(wildcard runs/wide-lowres/last.pt),--resume)

## bundle-small-faces: the bundled small-faces network (session 38): train-lowres's last.pt (chosen on val) with the multi-scale TTA, int8 with bundle-default-int8's settings, logit adjustment and temperature fitted on val, its val and test figures (on 48 px faces) recorded in its .json; then its val figures by face size, alone and as the default routes faces to it
bundle-small-faces: $(VENV)/.test
	$(BIN)/ferkit export runs/wide-lowres/last.pt --out runs/wide-lowres/last-scales.onnx --tta scales
	$(BIN)/ferkit quantize runs/wide-lowres/last-scales.onnx --data $(DATA) --out src/ferkit/weights/small-faces.onnx
	$(BIN)/ferkit calibrate src/ferkit/weights/small-faces.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model src/ferkit/weights/small-faces.onnx --data $(DATA) --split val --record --out runs/small-faces-val
	$(BIN)/ferkit evaluate --model src/ferkit/weights/small-faces.onnx --data $(DATA) --split test --record --out runs/small-faces-test
	$(BIN)/python benchmarks/face_size.py --data $(DATA) --models default small-faces --routed default

## roll: rolled faces on val (session 39, docs/accuracy.md): the box as it lies against the face turned upright by its eye landmarks, faces at 192 and 96 px rolled -30..30 degrees, then 96 px with the landmarks refined (about 70 min on 2 cores)
roll: $(VENV)/.test
	$(BIN)/python benchmarks/roll.py --data $(DATA) --scale 4 --json runs/roll-val-x4.json
	$(BIN)/python benchmarks/roll.py --data $(DATA) --scale 2 --json runs/roll-val-x2.json
	$(BIN)/python benchmarks/roll.py --data $(DATA) --scale 2 --refine 160 --thresholds 15 --clips --json runs/roll-val-x2-refine.json

## camera: JPEG, blur and noise on val (sessions 40-41, docs/accuracy.md): the bundled models on degraded 96 px faces, then the sharpness measure and threshold under which the default routes a blurred crop to small-faces, chosen on val with blur, noise and JPEG chained (about 30 min on 2 cores)
camera: $(VENV)/.test
	$(BIN)/python benchmarks/camera.py default default-int8 small-faces int8 --data $(DATA)
	$(BIN)/python benchmarks/sharpness.py --data $(DATA) --mixtures --measures laplacian log median laplacian32 --quantiles 1 2 5 10 --cache runs/sharpness-val.npz

## train-gen2: the bundled default's network and settings distilled from teacher3 on the 2-core CPU (configs/wide-gen2.yaml: 110 min in bf16 + the teacher's pass, about 17 min; resumes if interrupted; session 28: val 70.38%, test 71.64%, not bundled)
train-gen2: runs/teacher3/teacher.onnx
	$(BIN)/ferkit train --config configs/wide-gen2.yaml --data $(DATA) $(if $(wildcard runs/wide-gen2/last.pt),--resume)

## train-finetune: the bundled default since session 30: session 24's default network (runs/teacher3/default.onnx, from git history) fine-tuned at a tenth of its learning rate and distilled from teacher3 on the 2-core CPU (configs/wide-finetune.yaml: 55 min in bf16 + the teacher's pass, about 17 min; resumes if interrupted); then make bundle
train-finetune: runs/teacher3/teacher.onnx
	$(BIN)/ferkit train --config configs/wide-finetune.yaml --data $(DATA) $(if $(wildcard runs/wide-finetune/last.pt),--resume)

## train-finetune2: session 31's second fine-tune round: train-finetune's last.pt, distilled from teacher4 (configs/wide-finetune2.yaml: 55 min in bf16 + the teacher's pass, 15.5 min; resumes if interrupted; val 71.55% with the multi-scale TTA, not bundled on its own)
train-finetune2: runs/teacher4/teacher.onnx
	$(BIN)/ferkit train --config configs/wide-finetune2.yaml --data $(DATA) $(if $(wildcard runs/wide-finetune2/last.pt),--resume)

## train-finetune3: the bundled default since session 31: a third round from train-finetune2's last.pt at 1e-4, on teacher4's cached probabilities (configs/wide-finetune3.yaml: 35 min in bf16; resumes if interrupted); then make bundle
train-finetune3:
	$(BIN)/ferkit train --config configs/wide-finetune3.yaml --data $(DATA) $(if $(wildcard runs/wide-finetune3/last.pt),--resume)

## train-finetune-wide41: session 34's fine-tune of train-gpu-members' wide seed-41 network on the 2-core CPU, distilled from the bundled ensemble (configs/wide41-finetune.yaml: 55 min in bf16 + the ensemble's pass over the train faces, about 47 min; resumes if interrupted). Session 34 gave it session 33's cached probabilities of the same five networks instead (--teacher runs/s33/ft4/teacher_probs.npy)
train-finetune-wide41: $(VENV)/.test
	$(BIN)/ferkit train --config configs/wide41-finetune.yaml --data $(DATA) $(if $(wildcard runs/wide41-finetune/last.pt),--resume)

## train-gpu: session 24's default recipe on a CUDA GPU: configs/gpu-wide.yaml, vgg_s 64-128-256-512 on 40 px crops distilled from teacher2 (7 min on a GPU shared by four runs + the teacher's pass on the CPU, 9 min on 2 cores)
train-gpu: runs/teacher2/teacher.onnx
	$(BIN)/ferkit train --config configs/gpu-wide.yaml --data $(DATA) --device cuda $(if $(wildcard runs/gpu-wide/last.pt),--resume)

## bundle: export the bundled default's checkpoint, DEFAULT_CKPT (since session 31 best.pt of make train-finetune3, chosen on val), with the multi-scale TTA (chosen on val); fit its logit adjustment and temperature on val; record its val and test figures. Without DEFAULT_CKPT, the bundled graph's own weights are re-exported.
# the bundled default's checkpoint since session 31: the third fine-tune round (make train-finetune3)
DEFAULT_CKPT ?= runs/wide-finetune3/best.pt
bundle: $(VENV)/.test
	$(BIN)/ferkit export $(if $(wildcard $(DEFAULT_CKPT)),$(DEFAULT_CKPT),default) --out src/ferkit/weights/default.onnx --tta scales
	$(BIN)/ferkit calibrate --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --data $(DATA) --split val --record --out runs/bundled-val
	$(BIN)/ferkit evaluate --data $(DATA) --split test --record --out runs/bundled-test

## bundle-default-int8: the bundled default's network with its multi-scale TTA, int8 (session 25): quantized on 1000 training faces with bundle-int8's settings (identical int8 weights of the six views stored once); logit adjustment and temperature fitted on val; val and test figures recorded
bundle-default-int8: $(VENV)/.test
	$(BIN)/ferkit export $(if $(wildcard $(DEFAULT_CKPT)),$(DEFAULT_CKPT),default) --out runs/default-int8/float.onnx --tta scales
	$(BIN)/ferkit quantize runs/default-int8/float.onnx --data $(DATA) --out src/ferkit/weights/default-int8.onnx --meta-from default
	$(BIN)/ferkit calibrate src/ferkit/weights/default-int8.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model src/ferkit/weights/default-int8.onnx --data $(DATA) --split val --record --out runs/default-int8-val
	$(BIN)/ferkit evaluate --model src/ferkit/weights/default-int8.onnx --data $(DATA) --split test --record --out runs/default-int8-test

## train-restart: session 12's second stage of the wide distilled network (warm restart, CutMix, weight average; 100 min + the teacher's pass), the int8 model's source; needs make train first
train-restart: $(VENV)/.test
	$(BIN)/ferkit train --config configs/distill-wide-restart.yaml --data $(DATA) $(if $(wildcard runs/distill-wide-restart/last.pt),--resume)

## bundle-int8: the int8 model: single-pass export of session 12's restart of the wide distilled network (chosen on val), quantized on 1000 training faces (settings chosen on val); logit adjustment (none chosen) and temperature fitted on val
bundle-int8: $(VENV)/.test
	$(BIN)/ferkit export runs/distill-wide-restart/best.pt --out runs/int8/float.onnx
	$(BIN)/ferkit quantize runs/int8/float.onnx --data $(DATA) --out src/ferkit/weights/int8.onnx --meta-from default
	$(BIN)/ferkit calibrate src/ferkit/weights/int8.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model src/ferkit/weights/int8.onnx --data $(DATA) --split val --record --out runs/int8-val
	$(BIN)/ferkit evaluate --model src/ferkit/weights/int8.onnx --data $(DATA) --split test --record --out runs/int8-test

## train-gpu-members: session 33's two GPU members of the bundled ensemble, trained from scratch on the labels alone on a CUDA GPU (session 33 ran five such runs at once on one H100, 7.7 min each: seeds 41-43 of configs/gpu-wide.yaml, 44-45 of configs/gpu-vgg.yaml; ensemble_choices kept 41 and 45; a run alone on a GPU gets more epochs in the same clock)
train-gpu-members: $(VENV)/.test
	$(BIN)/ferkit train --config configs/gpu-wide.yaml --data $(DATA) --teacher "" --seed 41 --budget 7.7 --device cuda --out runs/gpu-s33/wide41
	$(BIN)/ferkit train --config configs/gpu-vgg.yaml --data $(DATA) --teacher "" --seed 45 --budget 7.7 --device cuda --out runs/gpu-s33/vgg45

## bundle-ensemble: the bundled ensemble since session 33 (val's choice among the 127 subsets of default, the previous ensemble and session 33's five GPU networks, benchmarks/ensemble_choices.py), five networks combined flat with weights 2 1 1 2 2: session 31's default and session 24's two ensemble members (from git history: needs a clone), and train-gpu-members' two networks (each with val's TTA, logit adjustment and temperature); large weights stored as float16; logit adjustment and temperature of the whole fitted on val
bundle-ensemble: $(VENV)/.test
	mkdir -p runs/members runs/ens
	for f in default.onnx default.json ensemble.onnx ensemble.json; do git show f3c0ab8:src/ferkit/weights/$$f > runs/members/s32-$$f; done
	for i in 0 1; do $(BIN)/ferkit export runs/members/s32-ensemble.onnx --member $$i --tta scales --out runs/members/s24-member$$i.onnx && $(BIN)/ferkit calibrate runs/members/s24-member$$i.onnx --data $(DATA) || exit 1; done
	for r in wide41 vgg45; do $(BIN)/python benchmarks/val_choices.py runs/gpu-s33/$$r/best.pt --tta scales scales5 --out runs/members/$$r.onnx && $(BIN)/ferkit calibrate runs/members/$$r.onnx --data $(DATA) --logit-adjust || exit 1; done
	$(BIN)/ferkit ensemble runs/members/s32-default.onnx runs/members/s24-member0.onnx runs/members/s24-member1.onnx runs/members/wide41.onnx runs/members/vgg45.onnx --weights 2 1 1 2 2 --fp16-weights --out runs/ens/ensemble.onnx
	$(BIN)/ferkit calibrate runs/ens/ensemble.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model runs/ens/ensemble.onnx --data $(DATA) --split val --record --out runs/ens/ensemble-val
	$(BIN)/ferkit evaluate --model runs/ens/ensemble.onnx --data $(DATA) --split test --record --out runs/ens/ensemble-test
	cp runs/ens/ensemble.onnx runs/ens/ensemble.json src/ferkit/weights/

## bundle-ensemble-s24: the bundled ensemble of sessions 24-32 (chosen on val among 255 subsets of eight models by benchmarks/ensemble_choices.py): the wide GPU network trained on the labels alone (runs/gpu-wide-labels: ferkit train --config configs/gpu-wide.yaml --teacher "" --seed 5 --out runs/gpu-wide-labels --device cuda) with the multi-scale TTA + sessions 20-23's default (from git history); logit adjustment and temperature fitted on val
bundle-ensemble-s24: runs/teacher2/teacher.onnx
	mkdir -p runs/members runs/ens
	$(BIN)/ferkit export runs/gpu-wide-labels/best.pt --out runs/members/wide-labels-scales.onnx --tta scales
	$(BIN)/ferkit calibrate runs/members/wide-labels-scales.onnx --data $(DATA)
	$(BIN)/ferkit ensemble runs/members/wide-labels-scales.onnx runs/teacher2/default.onnx --out runs/ens-s24/ensemble.onnx
	$(BIN)/ferkit calibrate runs/ens-s24/ensemble.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model runs/ens-s24/ensemble.onnx --data $(DATA) --split val --record --out runs/ens-s24/ensemble-val
	$(BIN)/ferkit evaluate --model runs/ens-s24/ensemble.onnx --data $(DATA) --split test --record --out runs/ens-s24/ensemble-test

## bundle-ensemble-s8: the bundled ensemble of sessions 8-23, rebuilt into runs/ens-s8 (chosen on val by benchmarks/ensemble_choices.py): stage 4 crops + medium crops + medium flip + fast seed 1 crops; needs runs/default-polish (make train-stages), runs/medium (configs/medium.yaml) and runs/fast-crop40-seed1 (configs/fast.yaml --seed 1); logit adjustment and temperature fitted on val
bundle-ensemble-s8: $(VENV)/.test
	mkdir -p runs/members runs/ens-s8
	$(BIN)/ferkit export runs/default-polish/best.pt --out runs/members/stage4-crops.onnx --tta crops
	$(BIN)/ferkit calibrate runs/members/stage4-crops.onnx --data $(DATA)
	$(BIN)/ferkit export runs/medium/best.pt --out runs/members/medium-crops.onnx --tta crops
	$(BIN)/ferkit export runs/medium/best.pt --out runs/members/medium-flip.onnx --tta flip
	$(BIN)/ferkit export runs/fast-crop40-seed1/best.pt --out runs/members/crop40s1-crops.onnx --tta crops
	$(BIN)/ferkit calibrate runs/members/medium-crops.onnx --data $(DATA)
	$(BIN)/ferkit calibrate runs/members/medium-flip.onnx --data $(DATA)
	$(BIN)/ferkit ensemble runs/members/stage4-crops.onnx runs/members/medium-crops.onnx runs/members/medium-flip.onnx runs/members/crop40s1-crops.onnx --out runs/ens-s8/ensemble.onnx
	$(BIN)/ferkit calibrate runs/ens-s8/ensemble.onnx --data $(DATA) --logit-adjust
	$(BIN)/ferkit evaluate --model runs/ens-s8/ensemble.onnx --data $(DATA) --split val --record --out runs/ens-s8/ensemble-val
	$(BIN)/ferkit evaluate --model runs/ens-s8/ensemble.onnx --data $(DATA) --split test --record --out runs/ens-s8/ensemble-test

## evaluate: the bundled model on PrivateTest (the README's headline figure)
evaluate: $(VENV)/.test
	$(BIN)/ferkit evaluate --data $(DATA) --split test --out runs/evaluate

## benchmark: every bundled model on val and PrivateTest: the README's tables (accuracy with its 95% bootstrap interval, macro F1, top-2, per-class recall, ms per face); exits 1 if a model no longer scores the test accuracy its .json recorded
benchmark: $(VENV)/.test
	$(BIN)/python benchmarks/accuracy.py --data $(DATA)

## report: the HTML report of the bundled model (test metrics, calibration, Grad-CAM), timed
report: $(VENV)/.test
	$(BIN)/ferkit report --data $(DATA) --out runs/report/report.html --figures runs/report/figures

# Benchmarks against the fer pip package (FER_PYTHON: a Python with fer installed, see README).
FER_PYTHON ?= /work/fer-venv/bin/python
$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

## speed: every speed benchmark, ferkit and fer side by side
speed: $(VENV)/.bench
	cd benchmarks && ../$(BIN)/python speed.py --data $(abspath $(DATA)) --fer-python $(FER_PYTHON)
	cd benchmarks && ../$(BIN)/python folder.py --fer-python $(FER_PYTHON)
	cd benchmarks && ../$(BIN)/python video.py --fer-python $(FER_PYTHON)
	cd benchmarks && ../$(BIN)/python detectors.py

clean:
	rm -rf $(VENV) runs .pytest_cache
