#!/usr/bin/env python3
"""Times transformers' text encoders on the configs of `jpbench text-encoder` (random weights,
77 tokens, batch 1) and, with --jpbench, runs our binary on the same model right after, so both
figures of a line see the same machine load. Prints one JSON line per model with the ratio
ours / transformers (below 1 is faster than transformers).

  .venv/bin/python Tools/bench_text_encoder.py --jpbench .build/release/jpbench --repetitions 2
"""
import argparse
import json
import subprocess
import time

import torch
from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModel, XLMRobertaConfig, XLMRobertaModel


def build(name):
    if name == "clip-l":      # openai/clip-vit-large-patch14 text tower (SD1's text encoder)
        return CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
            projection_dim=768, eos_token_id=2))
    if name == "bert-base":   # bert-base-uncased sizes
        return BertModel(BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                    num_attention_heads=12, intermediate_size=3072))
    if name == "xlmr-large":  # xlm-roberta-large sizes
        return XLMRobertaModel(XLMRobertaConfig(
            vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
            intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
            pad_token_id=1))
    raise SystemExit(f"unknown model {name}")


def time_torch(model, ids, repetitions):
    with torch.inference_mode():
        model(input_ids=ids)   # warm-up
        times = []
        for _ in range(repetitions):
            start = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - start)
    times.sort()
    return times[0], times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["clip-l", "bert-base", "xlmr-large"])
    ap.add_argument("--tokens", type=int, default=77)
    ap.add_argument("--repetitions", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--jpbench", help="path of the jpbench binary to run on the same models")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # The same ids as jpbench: 5 + (b*31 + t*17) % 1000, batch 1, no padding.
    ids = torch.tensor([[5 + (t * 17) % 1000 for t in range(args.tokens)]])
    for name in args.models:
        model = build(name).eval()
        params = sum(p.numel() for p in model.parameters())
        best, median = time_torch(model, ids, args.repetitions)
        del model
        line = {"bench": "text-encoder-transformers", "model": name, "parameters": params, "tokens": args.tokens,
                "threads": args.threads, "repetitions": args.repetitions,
                "torch_seconds": round(best, 6), "torch_median_seconds": round(median, 6)}
        if args.jpbench:
            out = subprocess.run([args.jpbench, "text-encoder", "--models", name, "--tokens", str(args.tokens),
                                  "-r", str(args.repetitions), "-t", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            ours = json.loads(out.strip().splitlines()[-1])
            line.update({"jpgen_seconds": ours["seconds"], "jpgen_median_seconds": ours["median_seconds"],
                         "ratio_jpgen_to_torch": round(ours["seconds"] / best, 3)})
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
