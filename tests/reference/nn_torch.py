#!/usr/bin/python3
"""PyTorch twin of avemo's network engine (src/nn/), for tests and benchmarks.

build_net(path) reads the [network], [branch.*] and [head] sections of a pipeline INI file
and builds the same network with torch.nn, with parameters in avemo's flat order
(branches in the order of `inputs`, then the head; each layer's weight then bias).

Run as a script it writes the debug state that tests/nn/test_nn_parity.c compares with
(llm.c's test_gpt2 is the model):

    nn_torch.py PIPELINE.ini OUTDIR [--batch 4] [--seed 1] [--inputs audio:1x8x16,...] [--margin 2e-5]
              [--full-forward]

--inputs replaces the input sizes (the parameters do not depend on them: every branch ends in
a global average pool; with seq and lstm, only the number of frames may change), so that the
test stays small.  seq is x.permute(0, 3, 1, 2).reshape(B, T, C * F) and lstm is
nn.LSTM(batch_first=True) (output sequence, or h_n over directions): see ToSeq and Lstm.  The network actually used is written to
OUTDIR/pipeline.ini.

ReLU and max pooling are not differentiable at their kinks: when a ReLU input is within float
rounding of 0, or the two largest values of a pooling window within rounding of each other, the
C engine and PyTorch may legitimately take different branches and their gradients differ.  So
the draw of parameters and inputs is repeated (seed, seed + 1, ...) until, computed in float64,
no ReLU input and no pooling window's top-two gap is closer than --margin to a kink.

OUTDIR receives .npy files: params, stats (batch-norm running mean/var), in_<name>, labels,
class_weights, meta ([label_smoothing]), eval_/train_ logits, loss, grads, train_stats
(running statistics after the training forward) and the losses of 10 optimiser steps
(adam_losses, adamw_losses with clipping, sgd_losses) with the final parameters of each.
Dropout is off in the training runs (avemo_nn_ctx_set_dropout(ctx, 0) on the C side).
"""
import argparse
import configparser
import copy
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


class ToSeq(nn.Module):
    """avemo's `seq`: a C x F x T feature map as T steps of C*F features (batch_first)."""

    def forward(self, x):
        b, c, f, t = x.shape
        return x.permute(0, 3, 1, 2).reshape(b, t, c * f)


class Lstm(nn.Module):
    """avemo's `lstm H [seq] [bidirectional]`: nn.LSTM(batch_first=True); the whole output
    sequence, or h_n (both directions' final states, forward then reverse)."""

    def __init__(self, inputs, hidden, seq, bidirectional):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True, bidirectional=bidirectional)
        self.seq = seq

    def forward(self, x):
        out, (h_n, _) = self.lstm(x)
        if self.seq:
            return out
        return torch.cat(list(h_n), 1)


def build_stage(items, c, h, w, is4d, last_stage):
    """Modules of one stage from its layer items, tracking the shape like src/nn/graph.c.
    A sequence (after seq or lstm N seq) is a (B, T, F) tensor with c = T, h = F, w = 1."""
    mods = []
    is3d = False
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
            c, h, w, is4d, is3d = c * h * w, 1, 1, False, False
        elif op == "dense":
            if is4d or is3d:
                mods.append(nn.Flatten())
            n = int(t[1])
            mods.append(nn.Linear(c * h * w, n))
            c, h, w, is4d, is3d = n, 1, 1, False, False
        elif op == "seq":
            mods.append(ToSeq())
            c, h, w, is4d, is3d = w, c * h, 1, False, True
        elif op == "lstm":
            hidden, seq, bi = int(t[1]), "seq" in t[2:], "bidirectional" in t[2:]
            mods.append(Lstm(h, hidden, seq, bi))
            out = hidden * (2 if bi else 1)
            c, h, w, is3d = (c, out, 1, True) if seq else (out, 1, 1, False)
        elif op == "dropout":
            mods.append(nn.Dropout(float(t[1])))
        else:
            raise ValueError("unknown layer " + item)
    return nn.Sequential(*mods), c * h * w


def read_ini(ini_path, inputs_override=None):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    cp.read(ini_path)
    if inputs_override:
        cp["network"]["inputs"] = inputs_override
    return cp


class Net(nn.Module):
    def __init__(self, cp):
        super().__init__()
        if isinstance(cp, str):
            cp = read_ini(cp)
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


def count_fragile(net, xs, margin):
    """Decisions of ReLU and max pooling closer than margin to a kink, computed in float64."""
    net64 = copy.deepcopy(net).double()
    xs64 = [x.double() for x in xs]
    count = [0]

    def relu_hook(module, inp, out):
        count[0] += int((inp[0].abs() < margin).sum())

    def pool_hook(module, inp, out):
        k = module.kernel_size
        x = inp[0][:, :, : inp[0].shape[2] // k * k, : inp[0].shape[3] // k * k]
        windows = F.unfold(x.reshape(-1, 1, x.shape[2], x.shape[3]), k, stride=k)
        top2 = windows.topk(2, dim=1).values
        count[0] += int(((top2[:, 0] - top2[:, 1] < margin) & (top2[:, 0] > margin)).sum())

    for m in net64.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(relu_hook)
        elif isinstance(m, nn.MaxPool2d):
            m.register_forward_hook(pool_hook)
    with torch.no_grad():
        for mode in (False, True):
            net64.train(mode)
            net64.set_dropout(False)
            net64(xs64)
    return count[0]


def draw(cp, seed, batch):
    """Network with non-trivial batch-norm state, inputs and labels for one seed."""
    torch.manual_seed(seed)
    net = Net(cp)
    for bn in net.batchnorms():
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.momentum = 1.0
    # Running statistics: those of another batch, perturbed, so that eval-mode activations
    # have a realistic spread (and are rarely near a kink).
    with torch.no_grad():
        net.train()
        net.set_dropout(False)
        net([torch.randn(8, *shape) for _, shape in net.inputs])
    for bn in net.batchnorms():
        with torch.no_grad():
            bn.momentum = 0.1
            bn.running_mean.add_(torch.randn_like(bn.running_mean) * 0.05)
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.8, 1.25))
    xs = [torch.randn(batch, *shape) for _, shape in net.inputs]
    labels = torch.randint(0, net.head[-1].out_features, (batch,))
    return net, xs, labels


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
    ap.add_argument("--inputs", help="replace [network] inputs, e.g. audio:1x16x32,face:3x16x16")
    ap.add_argument("--margin", type=float, default=2e-5)
    ap.add_argument("--full-forward", action="store_true",
                    help="also write logits for the original input sizes (full_*)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.outdir, exist_ok=True)
    cp = read_ini(args.pipeline, args.inputs)
    with open(os.path.join(args.outdir, "pipeline.ini"), "w") as f:
        cp.write(f)
    B = args.batch
    for attempt in range(100):
        net, xs, labels = draw(cp, args.seed + attempt, B)
        if args.margin <= 0 or count_fragile(net, xs, args.margin) == 0:
            break
    else:
        sys.exit("no draw without decisions near a kink; lower --margin or the sizes")
    classes = net.head[-1].out_features
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

    if args.full_forward:
        # The same parameters on inputs of the pipeline's own sizes: logits and loss in both modes.
        full = Net(read_ini(args.pipeline))
        full.load_state_dict(state)
        full_xs = [torch.randn(B, *shape) for _, shape in full.inputs]
        for (name, _), x in zip(full.inputs, full_xs):
            save(args.outdir, "full_in_" + name, x.numpy())
        with torch.no_grad():
            for mode in ("eval", "train"):
                full.load_state_dict(state)
                full.train(mode == "train")
                full.set_dropout(False)
                logits = full(full_xs)
                save(args.outdir, "full_%s_logits" % mode, logits.numpy())
                save(args.outdir, "full_%s_loss" % mode, [loss_fn(logits, labels).item()])

    runs = {
        "adam": (lambda p: torch.optim.Adam(p, lr=1e-4), 0.0),
        "adamw": (lambda p: torch.optim.AdamW(p, lr=1e-4, weight_decay=0.1), 1.0),
        "sgd": (lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, weight_decay=1e-3), 0.0),
    }
    for name, (make_opt, clip) in runs.items():
        losses, params = run_optimiser(net, state, xs, labels, loss_fn, make_opt, clip)
        save(args.outdir, name + "_losses", losses)
        save(args.outdir, name + "_params", params)
    print("wrote %s (seed %d)" % (args.outdir, args.seed + attempt), file=sys.stderr)


if __name__ == "__main__":
    main()
