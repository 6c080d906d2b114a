"""Judges the images of an `evomerge evolve` (or `evomerge eval`) run with the demo world's attribute
classifier: for every image in RUN_DIR/results.sqlite, the share of checks it passes (each prompted tag
present: element, time of day, style; each unprompted major element absent), then per model the mean with
a 95% interval, and the paired difference against --against (default: evolved) over the same prompt and
seed, mean +- t(0.975, n-1) sd / sqrt(n), and the same over prompts (each prompt's mean difference over its seeds, the
interval for a claim about prompts). CLIPScores stored in the run are paired the same way. The classifier is
work/full/classifier.pt when a training run left one there, else the shipped
Models/demo-judge/attribute-classifier.safetensors.

  .venv/bin/python Tools/demo-world/judge.py runs/demo-full
  .venv/bin/python Tools/demo-world/judge.py runs/demo-full --json
"""

import argparse
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import train  # noqa: E402
import world  # noqa: E402


def checks(pred, tags):
    """Checks passed and made for one image: prompted tags present, unprompted major elements absent."""
    good = tot = 0
    for i, a in enumerate(world.ATTRIBUTES):
        name = a.split(":")[-1]
        if a.startswith(("time:", "style:")):
            if name in tags:
                tot += 1
                good += pred[i] == 1
        elif name in tags:
            tot += 1
            good += pred[i] == 1
        elif a in world.MAJOR:
            tot += 1
            good += pred[i] == 0
    return good, tot


def t975(df):
    """The 97.5% quantile of Student's t with df degrees of freedom (Cornish-Fisher series in 1/df; within
    5e-4 of the exact value from df = 5 on: 2.571, 2.064 at 24, 1.984 at 99)."""
    z = 1.959963984540054
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * df ** 4))


def interval(x):
    """Mean and the half-width of its 95% interval (Student's t: 25 prompts are too few for 1.96)."""
    x = np.asarray(x, float)
    half = t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), float(half)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--work", default=str(Path(__file__).parent / "work" / "full"))
    ap.add_argument("--against", default="evolved")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    train.P = argparse.Namespace(work=a.work)
    db = Path(a.run_dir) / "results.sqlite"
    if not db.exists():
        sys.exit(f"judge.py: {db} does not exist (run evomerge evolve or eval first)")
    rows = sqlite3.connect(db).execute("select model, promptId, seed, score, imagePath, tags from image").fetchall()
    if not rows:
        sys.exit(f"judge.py: {db} holds no images")
    net = train.load_classifier()
    imgs = []
    for r in rows:
        path = Path(r[4])
        if not path.is_absolute():
            path = Path(a.run_dir) / path
        imgs.append(np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BICUBIC)))
    with torch.no_grad():
        pred = train.classify(net, np.stack(imgs))
    per = {}
    for r, p in zip(rows, pred):
        g, t = checks(p, set(json.loads(r[5])))
        per.setdefault(r[0], {})[(r[1], r[2])] = (g / max(t, 1), r[3])
    if a.against not in per:
        sys.exit(f"judge.py: no images of model '{a.against}' in {db} (models: {', '.join(sorted(per))})")
    ref = per[a.against]
    out = {}
    for model, items in sorted(per.items()):
        keys = sorted(set(items) & set(ref))
        agree = interval([items[k][0] for k in keys])
        clip = interval([items[k][1] for k in keys])
        d_agree = interval([ref[k][0] - items[k][0] for k in keys]) if model != a.against else (0.0, 0.0)
        d_clip = interval([ref[k][1] - items[k][1] for k in keys]) if model != a.against else (0.0, 0.0)
        # The same differences averaged per prompt first: an interval over prompts, the stricter one for a
        # claim about prompts (images of one prompt are not independent draws).
        by_prompt = lambda j: interval([np.mean([ref[k][j] - items[k][j] for k in keys if k[0] == pid])  # noqa: E731
                                        for pid in sorted({k[0] for k in keys})])
        p_agree, p_clip = (by_prompt(0), by_prompt(1)) if model != a.against else ((0.0, 0.0), (0.0, 0.0))
        out[model] = {"images": len(keys), "prompts": len({k[0] for k in keys}), "agreement": agree, "clipscore": clip,
                      f"{a.against}_minus_model_agreement": d_agree, f"{a.against}_minus_model_clipscore": d_clip,
                      f"{a.against}_minus_model_agreement_by_prompt": p_agree,
                      f"{a.against}_minus_model_clipscore_by_prompt": p_clip}
    if a.json:
        print(json.dumps(out, ensure_ascii=False))
        return
    r = a.against
    print(f"| model | images | prompts | attribute agreement | CLIPScore | {r} - model (agreement) | by prompt "
          f"| {r} - model (CLIPScore) | by prompt |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, v in out.items():
        f = lambda m: f"{m[0]:+.3f} ± {m[1]:.3f}"  # noqa: E731
        print(f"| {model} | {v['images']} | {v['prompts']} | {v['agreement'][0]:.3f} ± {v['agreement'][1]:.3f} | "
              f"{v['clipscore'][0]:.3f} ± {v['clipscore'][1]:.3f} | {f(v[f'{r}_minus_model_agreement'])} | "
              f"{f(v[f'{r}_minus_model_agreement_by_prompt'])} | {f(v[f'{r}_minus_model_clipscore'])} | "
              f"{f(v[f'{r}_minus_model_clipscore_by_prompt'])} |")


if __name__ == "__main__":
    main()
