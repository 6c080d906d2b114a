#!/usr/bin/env python3
"""The Python side of `jpbench tokenize`: transformers' tokenizer of a model folder (BertJapaneseTokenizer:
MeCab through fugashi + WordPiece) on the strings of a file (one per line), timed the way jpbench times
ours: `tokenizer(text, truncation=True)` for every string, best and median of --repetitions passes after a
warm-up pass. Prints one JSON line; with --ids-out, writes the ids of every string (a JSON list) so that
jpbench can check both sides produced the same ids.

  .venv/bin/python Tools/bench_tokenize.py --model Models/demo-lcm/tokenizer --strings /tmp/strings.txt
"""
import argparse
import json
import time

from transformers import AutoTokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="tokenizer folder (or a model folder with tokenizer/)")
    ap.add_argument("--strings", required=True, help="UTF-8 file, one string per line")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--ids-out", help="write the ids of every string here (JSON list of lists)")
    args = ap.parse_args()

    with open(args.strings, encoding="utf-8") as fh:
        strings = fh.read().split("\n")
    if strings and strings[-1] == "":
        strings.pop()
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model, subfolder="tokenizer")
    except (OSError, ValueError):
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    load_seconds = time.perf_counter() - started

    ids = [tokenizer(s, truncation=True)["input_ids"] for s in strings]   # warm-up, and the ids
    times = []
    for _ in range(args.repetitions):
        start = time.perf_counter()
        for s in strings:
            tokenizer(s, truncation=True)
        times.append(time.perf_counter() - start)
    times.sort()
    if args.ids_out:
        with open(args.ids_out, "w", encoding="utf-8") as fh:
            json.dump(ids, fh)
    print(json.dumps({
        "bench": "tokenize", "impl": "transformers", "class": type(tokenizer).__name__, "strings": len(strings),
        "load_seconds": round(load_seconds, 4), "seconds": round(times[0], 6), "median_seconds": round(times[len(times) // 2], 6),
        "strings_per_second": round(len(strings) / times[0], 1),
    }), flush=True)


if __name__ == "__main__":
    main()
