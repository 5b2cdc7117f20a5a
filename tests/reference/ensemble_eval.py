#!/usr/bin/env python3
"""Accuracy of an ensemble of models from their `avemo eval --shard 0/1 --out DIR` files.

    avemo eval A.avm --data ... --shard 0/1 --out /tmp/ens/A     # once per model
    tests/reference/ensemble_eval.py /tmp/ens/A /tmp/ens/B ...

Each member's per-file probabilities are combined by the mean of their logarithms (a product of
experts, as late fusion does); every subset of the members is scored, over all files and per
corpus (`data` index of the eval), so one run shows what each member adds.  Files missing from a
member are left out of every score.  A measuring aid for docs/results.md, not a shipped feature.
"""
import itertools
import json
import math
import os
import sys


def load(directory):
    """Rows by file name, and the corpus names, of one model's shard file(s)."""
    rows, corpora, labels = {}, [], None
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(directory, name)) as fh:
            for line in fh:
                row = json.loads(line)
                if "file" in row:
                    rows[row["file"]] = row
                else:
                    labels = row["labels"]
                    corpora = [d["corpus"] for d in row.get("data", [])]
    if not rows or labels is None:
        sys.exit("%s: no eval shard rows (run avemo eval --shard 0/1 --out %s)" % (directory, directory))
    return rows, corpora, labels


def score(members, files, labels, corpus_of, corpus):
    right = total = 0
    for f in files:
        if corpus is not None and corpus_of[f] != corpus:
            continue
        logp = [sum(math.log(max(m[f]["probs"][k], 1e-9)) for m in members) for k in range(len(labels))]
        right += labels[max(range(len(labels)), key=logp.__getitem__)] == members[0][f]["truth"]
        total += 1
    return right, total


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    loaded = {d.rstrip("/"): load(d) for d in sys.argv[1:]}
    first = next(iter(loaded.values()))
    labels, corpora = first[2], first[1]
    files = sorted(set.intersection(*[set(rows) for rows, _, _ in loaded.values()]))
    corpus_of = {f: corpora[first[0][f]["data"]] if corpora else "all" for f in files}
    names = list(loaded)
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            members = [loaded[n][0] for n in subset]
            parts = []
            for corpus in [None] + sorted(set(corpus_of.values())):
                right, total = score(members, files, labels, corpus_of, corpus)
                if total:
                    parts.append("%s %.1f%% (%d/%d)" % (corpus or "all", 100.0 * right / total, right, total))
            print("%s: %s" % (" + ".join(os.path.basename(n) for n in subset), ", ".join(parts)))


if __name__ == "__main__":
    main()
