"""Obvious, loop-per-user reference implementations of the evaluation metrics.

Only for tiny inputs: the tests compare :mod:`fastals.evaluation` with them.
"""

import math

import numpy as np


def rmse(t, p):
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(t, p)) / len(t))


def mae(t, p):
    return sum(abs(a - b) for a, b in zip(t, p)) / len(t)


def topk_by_sort(scores, n, exclude=()):
    """Indices of the n best scores (ties: lower index), excluding some."""
    cand = [j for j in range(len(scores)) if j not in set(exclude)]
    cand.sort(key=lambda j: (-scores[j], j))
    return cand[:n]


def precision(rec, rel, k):
    return sum(1 for i in rec[:k] if i in rel) / k


def recall(rec, rel, k):
    return sum(1 for i in rec[:k] if i in rel) / len(rel)


def average_precision(rec, rel, k):
    hits = 0
    total = 0.0
    for rank, item in enumerate(rec[:k], start=1):
        if item in rel:
            hits += 1
            total += hits / rank
    return total / min(k, len(rel))


def ndcg(rec, rel, k):
    dcg = sum(1.0 / math.log2(rank + 1)
              for rank, item in enumerate(rec[:k], start=1) if item in rel)
    idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(rel)) + 1))
    return dcg / idcg


def auc(scores, pos, train):
    """Fraction of (positive, negative) pairs ordered right; ties one half."""
    pos = [i for i in set(pos) if i not in set(train)]
    neg = [j for j in range(len(scores)) if j not in set(pos) and j not in set(train)]
    if not pos or not neg:
        return float("nan")
    total = 0.0
    for i in pos:
        for j in neg:
            if scores[i] > scores[j]:
                total += 1
            elif scores[i] == scores[j]:
                total += 0.5
    return total / (len(pos) * len(neg))


def ranking(S, train_rows, test_rows, k):
    """Mean precision, recall, MAP, NDCG and AUC over users with a test item.

    ``S`` dense scores; ``train_rows`` / ``test_rows`` lists of item sets.
    """
    out = {"precision": [], "recall": [], "map": [], "ndcg": [], "auc": []}
    for u in range(S.shape[0]):
        rel = set(test_rows[u]) - set(train_rows[u])
        if not rel:
            continue
        rec = topk_by_sort(list(S[u]), k, train_rows[u])
        out["precision"].append(precision(rec, rel, k))
        out["recall"].append(recall(rec, rel, k))
        out["map"].append(average_precision(rec, rel, k))
        out["ndcg"].append(ndcg(rec, rel, k))
        a = auc(list(S[u]), rel, train_rows[u])
        if not math.isnan(a):
            out["auc"].append(a)
    return {key: float(np.mean(v)) if v else float("nan") for key, v in out.items()}


def leave_k_out_ok(users, test_idx, k):
    """Check the leave-k-out contract with a loop: per user min(k, n-1) held out."""
    users = list(users)
    test = set(int(i) for i in test_idx)
    for u in set(users):
        idx = [i for i, v in enumerate(users) if v == u]
        held = sum(1 for i in idx if i in test)
        if held != min(k, len(idx) - 1):
            return False
    return True


def temporal_expected(users, ts, k):
    """Test indices of a per-user temporal split, by sorting each user's ratings."""
    out = []
    for u in set(users):
        idx = [i for i in range(len(users)) if users[i] == u]
        idx.sort(key=lambda i: (ts[i], i))
        h = min(k, len(idx) - 1)
        out.extend(idx[len(idx) - h:] if h > 0 else [])
    return sorted(out)
