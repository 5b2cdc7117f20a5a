#!/usr/bin/python3
"""PyTorch's times for a network of avemo's pipeline format, for avemo-bench's "nn" section.

    bench_nn_torch.py PIPELINE.ini [--repeats N]

Prints one JSON line: torch_fwd_b1_s, torch_fwd_b32_s (eval mode, no_grad) and torch_train_b32_s
(one Adam step in train mode at batch 32), medians in seconds, single-threaded, and the same
with _cpu_s: thread CPU time, steadier than wall-clock time on a shared machine."""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import nn_torch  # noqa: E402


def median_time(fn, repeats, clock=time.perf_counter):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def timings(out, key, fn, repeats):
    """Wall-clock median under key_s and thread CPU time median under key_cpu_s."""
    out[key + "_s"] = median_time(fn, repeats)
    out[key + "_cpu_s"] = median_time(fn, repeats, time.thread_time)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pipeline")
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = nn_torch.Net(args.pipeline)
    out = {}
    for batch in (1, 32):
        xs = [torch.randn(batch, *shape) for _, shape in net.inputs]
        net.eval()

        def forward():
            with torch.no_grad():
                net(xs)

        timings(out, "torch_fwd_b%d" % batch, forward, args.repeats * (5 if batch == 1 else 1))
    xs = [torch.randn(32, *shape) for _, shape in net.inputs]
    labels = torch.randint(0, net.head[-1].out_features, (32,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()

    def train_step():
        opt.zero_grad()
        loss_fn(net(xs), labels).backward()
        opt.step()

    timings(out, "torch_train_b32", train_step, args.repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
