"""Prompt moderation on the held-out evaluation set: per-category recall, benign false positives.

    python benchmarks/moderation_eval.py            # full system + ablations
    python benchmarks/moderation_eval.py --errors   # also list every mistake
    python benchmarks/moderation_eval.py --set blind7,blind8,blind9,blind10,blind11 --pool
                                                    # several sets counted as one

The set (benchmarks/data/moderation_eval.jsonl) was written separately from the training set
(src/cinepatch/safety/data/train.jsonl); no prompt is in both (tests/safety check this), and
this script prints how close the nearest training prompt is. Thresholds come from
cross-validation on the training set, not from this set.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cinepatch.safety import CATEGORIES, SafetyConfig, moderate_prompt
from cinepatch.safety.embed import get_minilm
from cinepatch.safety.head import get_head, load_training_set

DATA = Path(__file__).parent / "data"
SETS = {
    # 416 prompts; its errors were read once and the lexicon/training set changed after it
    "dev": DATA / "moderation_eval.jsonl",
    # 130 prompts written later, evaluated blind once (see docs/safety.md)
    "fresh": DATA / "moderation_eval_fresh.jsonl",
    # 345 prompts written by another author who had not read the safety code or sets
    "blind3": DATA / "moderation_eval_blind3.jsonl",
    # 350 prompts by a third author (same brief, a third of them long scene descriptions),
    # evaluated blind once after the changes made from blind3's errors
    "blind4": DATA / "moderation_eval_blind4.jsonl",
    # 349 prompts by a fourth author (same brief: a third short, a third long), who read no
    # code, data or set of the project (one prompt that was also a training prompt removed);
    # measured blind with the shipped head, and with a head trained on
    # what is now safety/data/train_extra.jsonl as well (docs/safety.md); its errors unread
    "blind5": DATA / "moderation_eval_blind5.jsonl",
    # 349 prompts by a fifth author, same brief plus ~85 tricky benign prompts near the
    # boundaries; one that was also a training prompt removed; measured once with the linear
    # head, then with the MLP head chosen by cross-validation before blind6 was run (docs/safety.md)
    "blind6": DATA / "moderation_eval_blind6.jsonl",
    # 350 prompts by a sixth author (same brief, ~125 tricky benign), who opened
    # no file of the project; measured with the shipped head, then with the head trained on
    # safety/data/train_extra2.jsonl as well (docs/safety.md); its errors unread
    "blind7": DATA / "moderation_eval_blind7.jsonl",
    # 348 prompts by a seventh author (same brief, half the benign ones tricky;
    # two that were also in other files removed), who opened no file of the project; written
    # while the head for train_extra2 was built and first measured with it; its errors unread
    "blind8": DATA / "moderation_eval_blind8.jsonl",
    # 342 prompts by an eighth author (same brief; eight that were also in other
    # files removed), who opened no file of the project; first measured with the head whose
    # thresholds are calibrated on the readings moderation serves (docs/safety.md); errors unread
    "blind9": DATA / "moderation_eval_blind9.jsonl",
    # 324 and 325 prompts by two more authors, who opened no file of the project and
    # declined to write sexual/minors prompts (175 benign, 25 for each other category; one
    # also in another file removed); first measured with the head that averages the MLP
    # with the character n-gram model (docs/safety.md); errors unread
    "blind10": DATA / "moderation_eval_blind10.jsonl",
    "blind11": DATA / "moderation_eval_blind11.jsonl",
}


NOVEL = 0.85  # cosine to the nearest training prompt below which a prompt counts as new


def wilson(k: int, n: int, z: float = 1.96) -> str:
    """The Wilson score interval of k successes in n trials, as "lo–hi"."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{centre - half:.3f}–{centre + half:.3f}"


def run(rows: list[dict[str, str]], config: SafetyConfig, name: str, show_errors: bool) -> np.ndarray:
    blocked, reviewed = [], []
    t0 = time.perf_counter()
    for r in rows:
        res = moderate_prompt(r["text"], config=config)
        blocked.append(not res.allowed)
        reviewed.append(res.review)
        if show_errors and (not res.allowed) != (r["label"] != "none"):
            print(f"  MISS[{r['label']}/{r.get('kind', 'unmarked')}] blocked={not res.allowed} "
                  f"as={res.category} via={res.source}: {r['text']}")
    ms = 1000 * (time.perf_counter() - t0) / len(rows)
    by_cat: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for r, b in zip(rows, blocked):
        by_cat[r["label"]].append(b)
        by_kind[("bad:" if r["label"] != "none" else "benign:") + r.get("kind", "unmarked")].append(b)
    bad = [b for r, b in zip(rows, blocked) if r["label"] != "none"]
    benign = [b for r, b in zip(rows, blocked) if r["label"] == "none"]
    print(f"== {name}  ({ms:.1f} ms/prompt)")
    for c in CATEGORIES:
        v = by_cat[c]
        shown = f"{np.mean(v):.3f}" if v else "  -  "  # blind10/11 have no sexual/minors prompts
        print(f"  recall {c:22s} {shown}  ({sum(v)}/{len(v)})")
    print(f"  recall ALL disallowed        {np.mean(bad):.3f}  ({sum(bad)}/{len(bad)}; "
          f"95% CI {wilson(sum(bad), len(bad))})")
    for k in sorted(by_kind):
        v = by_kind[k]
        label = "blocked" if k.startswith("bad:") else "false-positive"
        print(f"    {k:22s} {label} {np.mean(v):.3f}  ({sum(v)}/{len(v)})")
    print(f"  benign false-positive rate   {np.mean(benign):.3f}  ({sum(benign)}/{len(benign)}; "
          f"95% CI {wilson(sum(benign), len(benign))})")
    rv = [v for r, v in zip(rows, reviewed) if r["label"] == "none"]
    print(f"  benign allowed with review flag {np.mean(rv):.3f}  ({sum(rv)}/{len(rv)})")
    return np.array(blocked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--errors", action="store_true", help="list every misclassified prompt")
    ap.add_argument("--set", default="all", help=f"all, or comma-separated names: {', '.join(SETS)}")
    ap.add_argument("--pool", action="store_true", help="count the chosen sets as one")
    ap.add_argument("--no-ablations", action="store_true")
    args = ap.parse_args()
    names = list(SETS) if args.set == "all" else args.set.split(",")
    unknown = [n for n in names if n not in SETS]
    if unknown:
        ap.error(f"--set: unknown {', '.join(unknown)}; choose from all, {', '.join(SETS)}")
    if args.pool:
        evaluate("+".join(names), [SETS[n] for n in names], args.errors, not args.no_ablations)
    else:
        for name in names:
            evaluate(name, [SETS[name]], args.errors, not args.no_ablations)


def evaluate(name: str, paths: list[Path], show_errors: bool, ablations: bool) -> None:
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    n_bad = sum(r["label"] != "none" for r in rows)
    print(f"##### {name} ({', '.join(p.name for p in paths)}): {len(rows)} prompts, {n_bad} "
          f"disallowed, {len(rows) - n_bad} benign")

    texts, _, _ = load_training_set()
    enc = get_minilm()
    sims = (enc.encode([r["text"] for r in rows]) @ enc.encode(texts).T).max(1)
    print(f"nearest training prompt (cosine): median {np.median(sims):.2f}, "
          f"max {sims.max():.2f}, >=0.85: {int((sims >= 0.85).sum())}")

    blocked = run(rows, SafetyConfig(), "rules + head + review band (default)", show_errors)
    bad = np.array([r["label"] != "none" for r in rows])
    novel = sims < NOVEL
    print(f"  only prompts whose nearest training prompt is < {NOVEL} cosine: recall "
          f"{blocked[novel & bad].mean():.3f} ({blocked[novel & bad].sum()}/{(novel & bad).sum()}), "
          f"benign refused {blocked[novel & ~bad].mean():.3f} ({blocked[novel & ~bad].sum()}/{(novel & ~bad).sum()})")
    if ablations:
        run(rows, SafetyConfig(use_classifier=False), "rules only (ablation)", False)
        block = get_head().block
        run(rows, SafetyConfig(review=block), "rules + head without review band (ablation)", False)


if __name__ == "__main__":
    main()
