"""The PyTorch side of `jpbench merge`: a plain merge script (load the state dicts, merge, save).

    python Tools/bench_merge.py --dir DIR --method linear|ties

linear: 0.5 a + 0.5 b. ties: base + TIES(a, b) with weights 0.6/0.4 and density 0.5, using mergekit's
own magnitude sparsification and sign consensus. Prints one JSON line (seconds, peak RSS).
"""
import argparse
import json
import os
import resource
import time

import torch
from safetensors.torch import load_file, save_file


def ties_tensor(base, a, b):
    from mergekit.merge_methods.generalized_task_arithmetic import get_mask
    from mergekit.sparsify import magnitude
    deltas = torch.stack([magnitude((a - base).float(), 0.5), magnitude((b - base).float(), 0.5)])
    w = torch.tensor([0.6, 0.4]).view(-1, *([1] * base.dim()))
    deltas = deltas * w
    mask = get_mask(deltas, method="sum")
    divisor = (w * mask).sum(0)
    divisor[divisor == 0] = 1
    return (base.float() + (deltas * mask).sum(0) / divisor).half()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--method", choices=["linear", "ties"], required=True)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.time()
    if args.method == "linear":
        a = load_file(os.path.join(args.dir, "a.safetensors"))
        b = load_file(os.path.join(args.dir, "b.safetensors"))
        for name in a:
            a[name] = (0.5 * a[name].float() + 0.5 * b[name].float()).half()
        out = a
    else:
        base = load_file(os.path.join(args.dir, "base.safetensors"))
        a = load_file(os.path.join(args.dir, "a.safetensors"))
        b = load_file(os.path.join(args.dir, "b.safetensors"))
        for name in base:
            base[name] = ties_tensor(base[name], a[name], b[name])
        out = base
    save_file(out, os.path.join(args.dir, f"torch-{args.method}.safetensors"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": "pytorch", "method": args.method, "seconds": time.time() - start, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
