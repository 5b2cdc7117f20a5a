"""Plain PyTorch baseline for avemo's audio model (a reference script, not part of the product).

Measures what the network of pipelines/avemo-audio.ini reaches when trained plainly in PyTorch on
the same actor-independent RAVDESS folds, so avemo's own results can be judged against it:
cross-entropy without class weights, Adam 1e-3, batch 32, no augmentation, no LR schedule, early
stopping on the validation loss (patience 12) with the best weights restored, then accuracy and
unweighted (balanced) accuracy on the fold's test actors.

Features are avemo's own 40x128 MFCC (librosa-equal), computed once with `avemo features` and cached
in one .npz; each coefficient is normalised with the fold's training-set mean and deviation.

Run with Debian's python3 (torch 1.13, numpy), e.g.:
  /usr/bin/python3 tests/reference/torch_audio_baseline.py --splits /work/runs/s4/std/f{0,1,2,3,4}.split \
      --seed 1 --features-cache /work/runs/s4/torch/features.npz --avemo build/avemo \
      --json /work/runs/s4/torch/baseline-seed1.json
"""
import argparse, copy, json, os, re, subprocess, sys, tempfile, time
import numpy as np
import torch
from torch import nn

CLASSES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
EMOTION = {"01": "NEU", "03": "HAP", "04": "SAD", "05": "ANG", "06": "FEA", "07": "DIS"}  # RAVDESS code EE


def read_split(path):
    """Returns the fold number (from the header comment, else None) and {part: [(wav, label)]}."""
    fold, parts = None, {"train": [], "validation": [], "test": []}
    for line in open(path):
        if line.startswith("#"):
            m = re.search(r"\bfold (\d+)", line)
            fold = int(m.group(1)) if m else fold
        elif line.strip():
            part, wav = line.split(maxsplit=1)
            wav = wav.strip()
            parts[part].append((wav, CLASSES.index(EMOTION[os.path.basename(wav).split("-")[2]])))
    return fold, parts


def load_features(wavs, cache, avemo, pipeline):
    """MFCC of every wav, from the cache or computed with `avemo features` (then saved to the cache)."""
    feats = {}
    if os.path.exists(cache):
        with np.load(cache) as z:
            feats = dict(zip(z["paths"].tolist(), z["features"]))
    missing = sorted(set(wavs) - set(feats))
    if missing:
        print(f"computing {len(missing)} feature files with {avemo}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "x.npy")
            for wav in missing:  # raw MFCC: the fold's own statistics normalise it below
                subprocess.run([avemo, "features", wav, "--pipeline", pipeline, "--norm", "none", "--out", out],
                               check=True)
                feats[wav] = np.load(out)
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        keys = sorted(feats)
        np.savez(cache + ".tmp.npz", paths=np.array(keys), features=np.stack([feats[k] for k in keys]))
        os.replace(cache + ".tmp.npz", cache)  # never leave a half-written cache behind
    return feats


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]


def make_model():
    # Branch and head of pipelines/avemo-audio.ini; softmax lives in the loss.
    return nn.Sequential(
        *block(1, 32), *block(32, 64), *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, len(CLASSES)))


def run_fold(parts, feats, seed, epochs=100, batch=32, patience=12):
    data = {p: (np.stack([feats[w] for w, _ in v]), np.array([y for _, y in v])) for p, v in parts.items()}
    mean = data["train"][0].mean(axis=(0, 2), keepdims=True)  # per coefficient, training set only
    std = data["train"][0].std(axis=(0, 2), keepdims=True)
    t = {p: (torch.from_numpy((x - mean) / std).float().unsqueeze(1), torch.from_numpy(y)) for p, (x, y) in data.items()}
    torch.manual_seed(seed)  # per fold, so a fold's result does not depend on which folds ran before it
    model, loss_fn = make_model(), nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xtr, ytr = t["train"]
    best, best_epoch, best_state, epoch = float("inf"), 0, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(ytr))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(t["validation"][0]), t["validation"][1]).item()
        if val < best:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(t["test"][0]).argmax(1).numpy()
    y = t["test"][1].numpy()
    recalls = [np.mean(pred[y == c] == c) for c in range(len(CLASSES)) if np.any(y == c)]
    return {"accuracy": float(np.mean(pred == y)), "unweighted_accuracy": float(np.mean(recalls)),
            "best_epoch": best_epoch, "epochs": epoch, "best_validation_loss": best}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", nargs="+", required=True, help="avemo split files, one per fold")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--features-cache", required=True, help=".npz of MFCC by wav path (created or extended)")
    ap.add_argument("--avemo", default=os.path.join(root, "build", "avemo"))
    ap.add_argument("--pipeline", default=os.path.join(root, "pipelines", "avemo-audio.ini"))
    ap.add_argument("--json", help="write a JSON summary here")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the reference numbers were taken on a shared machine; one core each

    splits = [read_split(s) for s in args.splits]
    wavs = [w for _, parts in splits for v in parts.values() for w, _ in v]
    feats = load_features(wavs, args.features_cache, args.avemo, args.pipeline)
    results = []
    for i, (path, (fold, parts)) in enumerate(zip(args.splits, splits)):
        start = time.time()
        r = run_fold(parts, feats, args.seed)
        r.update(fold=i if fold is None else fold, split=path, seconds=round(time.time() - start, 1))
        results.append(r)
        print(f"fold {r['fold']}: test accuracy {100 * r['accuracy']:.1f}%, unweighted accuracy "
              f"{100 * r['unweighted_accuracy']:.1f}%, best epoch {r['best_epoch']} of {r['epochs']}, "
              f"{r['seconds']:.0f} s", flush=True)
    mean = {k: float(np.mean([r[k] for r in results])) for k in ("accuracy", "unweighted_accuracy")}
    print(f"mean over {len(results)} folds: test accuracy {100 * mean['accuracy']:.1f}%, "
          f"unweighted accuracy {100 * mean['unweighted_accuracy']:.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "torch": torch.__version__, "folds": results,
                       "mean_accuracy": mean["accuracy"], "mean_unweighted_accuracy": mean["unweighted_accuracy"]},
                      f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
