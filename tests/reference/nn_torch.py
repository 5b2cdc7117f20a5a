#!/usr/bin/python3
"""PyTorch twin of avemo's network engine (src/nn/), for tests and benchmarks.

build_net(path) reads the [network], [branch.*] and [head] sections of a pipeline INI file
and builds the same network with torch.nn, with parameters in avemo's flat order
(branches in the order of `inputs`, then the head; each layer's weight then bias).

Run as a script it writes the debug state that tests/nn/test_nn_parity.c compares with
(llm.c's test_gpt2 is the model):

    nn_torch.py PIPELINE.ini OUTDIR [--batch 4] [--seed 1]

OUTDIR receives .npy files: params, stats (batch-norm running mean/var), in_<name>, labels,
class_weights, meta ([label_smoothing]), eval_/train_ logits, loss, grads, train_stats
(running statistics after the training forward) and the losses of 10 optimiser steps
(adam_losses, adamw_losses with clipping, sgd_losses) with the final parameters of each.
Dropout is off in the training runs (avemo_nn_ctx_set_dropout(ctx, 0) on the C side).
"""
import argparse
import configparser
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LABEL_SMOOTHING = 0.1
CLASS_WEIGHTS = [1.0, 1.5, 0.8, 1.2, 0.7, 1.1, 0.9, 1.3]
STEPS = 10


def split_list(value):
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


class Pad(nn.Module):
    """Asymmetric zero padding (left, right, top, bottom), as avemo's 'same' for even totals."""

    def __init__(self, pads):
        super().__init__()
        self.pads = pads

    def forward(self, x):
        return F.pad(x, self.pads)


def build_stage(items, c, h, w, is4d, last_stage):
    """Modules of one stage from its layer items, tracking the shape like src/nn/graph.c."""
    mods = []
    for i, item in enumerate(items):
        t = item.split()
        op = t[0]
        if op == "softmax" and last_stage and i == len(items) - 1:
            break
        if op == "conv":
            f, k = int(t[1]), int(t[2])
            same, s, j = True, 1, 3
            while j < len(t):
                if t[j] in ("same", "valid"):
                    same = t[j] == "same"
                elif t[j] == "stride":
                    s = int(t[j + 1])
                    j += 1
                j += 1
            if same:
                oh, ow = (h + s - 1) // s, (w + s - 1) // s
                th, tw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
                pt, pl = th // 2, tw // 2
                if th % 2 or tw % 2:
                    mods.append(Pad((pl, tw - pl, pt, th - pt)))
                    mods.append(nn.Conv2d(c, f, k, stride=s))
                else:
                    mods.append(nn.Conv2d(c, f, k, stride=s, padding=(pt, pl)))
            else:
                oh, ow = (h - k) // s + 1, (w - k) // s + 1
                mods.append(nn.Conv2d(c, f, k, stride=s))
            c, h, w, is4d = f, oh, ow, True
        elif op == "bn":
            mods.append(nn.BatchNorm2d(c) if is4d else nn.BatchNorm1d(c))
        elif op == "relu":
            mods.append(nn.ReLU())
        elif op == "maxpool":
            k = int(t[1]) if len(t) > 1 else 2
            mods.append(nn.MaxPool2d(k))
            h, w = h // k, w // k
        elif op == "gap":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            h = w = 1
            is4d = False
        elif op == "flatten":
            mods.append(nn.Flatten())
            c, h, w, is4d = c * h * w, 1, 1, False
        elif op == "dense":
            if is4d:
                mods.append(nn.Flatten())
            n = int(t[1])
            mods.append(nn.Linear(c * h * w, n))
            c, h, w, is4d = n, 1, 1, False
        elif op == "dropout":
            mods.append(nn.Dropout(float(t[1])))
        else:
            raise ValueError("unknown layer " + item)
    return nn.Sequential(*mods), c * h * w


class Net(nn.Module):
    def __init__(self, ini_path):
        super().__init__()
        cp = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
        cp.read(ini_path)
        self.inputs = []
        branches = []
        total = 0
        for entry in split_list(cp["network"]["inputs"]):
            name, shape = entry.split(":")
            c, h, w = (int(v) for v in shape.split("x"))
            self.inputs.append((name, (c, h, w)))
            seq, size = build_stage(split_list(cp["branch." + name].get("layers", "")), c, h, w, True, False)
            branches.append(seq)
            total += size
        self.branches = nn.ModuleList(branches)
        self.head, _ = build_stage(split_list(cp["head"]["layers"]), total, 1, 1, False, True)

    def forward(self, xs):
        outs = [torch.flatten(b(x), 1) for b, x in zip(self.branches, xs)]
        return self.head(torch.cat(outs, 1))

    def batchnorms(self):
        return [m for m in self.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]

    def flat_params(self):
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()]).numpy()

    def flat_grads(self):
        return torch.cat([p.grad.detach().reshape(-1) for p in self.parameters()]).numpy()

    def flat_stats(self):
        parts = []
        for bn in self.batchnorms():
            parts += [bn.running_mean.detach(), bn.running_var.detach()]
        return torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)

    def set_dropout(self, enabled):
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train(enabled)


def save(outdir, name, array):
    np.save(os.path.join(outdir, name + ".npy"), np.ascontiguousarray(np.asarray(array, dtype=np.float32)))


def run_optimiser(net, state, xs, labels, loss_fn, make_opt, clip):
    net.load_state_dict(state)
    net.train()
    net.set_dropout(False)
    opt = make_opt(net.parameters())
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(net(xs), labels)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return losses, net.flat_params()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pipeline")
    ap.add_argument("outdir")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    os.makedirs(args.outdir, exist_ok=True)
    net = Net(args.pipeline)
    # Non-trivial batch-norm parameters and running statistics, so that both modes are tested.
    for bn in net.batchnorms():
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.running_mean.normal_(0.0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
    classes = net.head[-1].out_features
    B = args.batch
    xs = [torch.randn(B, *shape) for _, shape in net.inputs]
    labels = torch.randint(0, classes, (B,))
    weights = torch.tensor(CLASS_WEIGHTS[:classes])
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=LABEL_SMOOTHING)
    save(args.outdir, "params", net.flat_params())
    save(args.outdir, "stats", net.flat_stats())
    for (name, _), x in zip(net.inputs, xs):
        save(args.outdir, "in_" + name, x.numpy())
    save(args.outdir, "labels", labels.numpy())
    save(args.outdir, "class_weights", weights.numpy())
    save(args.outdir, "meta", [LABEL_SMOOTHING, B])
    state = {k: v.clone() for k, v in net.state_dict().items()}

    for mode in ("eval", "train"):
        net.load_state_dict(state)
        net.train(mode == "train")
        net.set_dropout(False)
        net.zero_grad()
        logits = net(xs)
        loss = loss_fn(logits, labels)
        loss.backward()
        save(args.outdir, mode + "_logits", logits.detach().numpy())
        save(args.outdir, mode + "_loss", [loss.item()])
        save(args.outdir, mode + "_grads", net.flat_grads())
        if mode == "train":
            save(args.outdir, "train_stats", net.flat_stats())

    runs = {
        "adam": (lambda p: torch.optim.Adam(p, lr=1e-3), 0.0),
        "adamw": (lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01), 1.0),
        "sgd": (lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4), 0.0),
    }
    for name, (make_opt, clip) in runs.items():
        losses, params = run_optimiser(net, state, xs, labels, loss_fn, make_opt, clip)
        save(args.outdir, name + "_losses", losses)
        save(args.outdir, name + "_params", params)
    print("wrote", args.outdir, file=sys.stderr)


if __name__ == "__main__":
    main()
