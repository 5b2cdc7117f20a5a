#!/usr/bin/python3
"""Grad-CAM and modality shares in PyTorch, the reference of tests/eval/test_explain.c.

    gradcam_torch.py DIR

DIR holds what the C test wrote: pipeline.ini (the model's network), params.npy and stats.npy
(avemo's flat parameters and batch-norm running statistics, in nn_torch.py's order),
in_<input>.npy (the network inputs, NCHW) and meta.npy:
[target class, shared-inputs bit mask, then per input the index of the explained layer in its
branch's `layers` list (-1: none)].

The network is nn_torch.Net in eval mode.  Grad-CAM: the score is the target's logit summed over
the batch; A = the explained layer's output, alpha_k = mean over the map of d score / d A_k,
cam = ReLU(sum_k alpha_k A_k), per sample, or once for a shared input (its rows are one sample:
the gradients are summed over the batch).  Then F.interpolate(bilinear, align_corners=False) to
the input's height and width and division by the maximum.
Shares: v(S) = the target's probability, softmax(logits / T) with the model's temperature T
(temperature.npy, 1 without), averaged over the batch with the branch outputs outside S set to 0
in the head's input; contributions are the Shapley values of v.

Writes cam_<input>.npy (maps x h x w), heat_<input>.npy (maps x H x W) and values.npy (v of each
subset bit mask, 2^inputs) into DIR.
"""
import itertools
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_torch  # noqa: E402


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")).astype(np.float32))


def set_weights(net, params, stats):
    at = 0
    with torch.no_grad():
        for p in net.parameters():
            n = p.numel()
            p.copy_(params[at:at + n].reshape(p.shape))
            at += n
        assert at == params.numel(), "parameter count differs"
        at = 0
        for bn in net.batchnorms():
            c = bn.running_mean.numel()
            bn.running_mean.copy_(stats[at:at + c])
            bn.running_var.copy_(stats[at + c:at + 2 * c])
            at += 2 * c
        assert at == stats.numel(), "statistics count differs"


def module_of_item(cp, name, shape, item):
    """Index in the branch's nn.Sequential of the last module made for layer item `item`."""
    items = nn_torch.split_list(cp["branch." + name]["layers"])
    seq, _ = nn_torch.build_stage(items[:item + 1], *shape, True, False)
    return len(seq) - 1


def gradcam(net, cp, xs, target, shared, layers):
    acts = {}
    for i, (name, shape) in enumerate(net.inputs):
        if layers[i] >= 0:
            module = net.branches[i][module_of_item(cp, name, shape, layers[i])]
            module.register_forward_hook(lambda m, inp, out, i=i: acts.__setitem__(i, out))
    logits = net(xs)
    score = logits[:, target].sum()
    keys = sorted(acts)
    grads = torch.autograd.grad(score, [acts[i] for i in keys])
    cams, heats = {}, {}
    for i, g in zip(keys, grads):
        a = acts[i].detach()
        if shared >> i & 1:
            alpha = g.sum(0).mean((1, 2))
            cam = F.relu((alpha[:, None, None] * a[0]).sum(0))[None]
        else:
            alpha = g.mean((2, 3))
            cam = F.relu((alpha[:, :, None, None] * a).sum(1))
        _, (c, h, w) = net.inputs[i]
        heat = F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        heat = heat / heat.amax((1, 2), keepdim=True).clamp_min(1e-30)
        cams[i], heats[i] = cam, heat
    return cams, heats


def coalition_values(net, xs, target, temperature):
    with torch.no_grad():
        outs = [torch.flatten(b(x), 1) for b, x in zip(net.branches, xs)]
        n = len(outs)
        values = []
        for mask in range(1 << n):
            parts = [o if mask >> i & 1 else torch.zeros_like(o) for i, o in enumerate(outs)]
            p = torch.softmax(net.head(torch.cat(parts, 1)) / temperature, 1)[:, target]
            values.append(p.mean().item())
    return values


def shapley(values, n):
    phi = []
    for i in range(n):
        total = 0.0
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for subset in itertools.combinations(others, k):
                s = sum(1 << j for j in subset)
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                total += weight * (values[s | 1 << i] - values[s])
        phi.append(total)
    return phi


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    cp = nn_torch.read_ini(os.path.join(d, "pipeline.ini"))
    net = nn_torch.Net(cp)
    set_weights(net, load(d, "params"), load(d, "stats"))
    net.eval()
    meta = [int(v) for v in np.load(os.path.join(d, "meta.npy"))]
    target, shared, layers = meta[0], meta[1], meta[2:]
    xs = [load(d, "in_" + name).reshape(-1, *shape) for name, shape in net.inputs]
    cams, heats = gradcam(net, cp, xs, target, shared, layers)
    for i, (name, _) in enumerate(net.inputs):
        if i in cams:
            np.save(os.path.join(d, "cam_%s.npy" % name), cams[i].numpy().astype(np.float32))
            np.save(os.path.join(d, "heat_%s.npy" % name), heats[i].numpy().astype(np.float32))
    t_path = os.path.join(d, "temperature.npy")
    temperature = float(np.load(t_path)[0]) if os.path.exists(t_path) else 1.0
    values = coalition_values(net, xs, target, temperature)
    np.save(os.path.join(d, "values.npy"), np.array(values, np.float32))
    np.save(os.path.join(d, "shapley.npy"), np.array(shapley(values, len(xs)), np.float32))


if __name__ == "__main__":
    main()
