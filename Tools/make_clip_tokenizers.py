"""Writes the CLIP BPE tokenizer folders bundled for single-file checkpoints (no model hub here):

  Models/tokenizers/clip/       SD1.x and SDXL's first text encoder (pad = <|endoftext|>)
  Models/tokenizers/clip-pad0/  SD2.x and SDXL's second text encoder (pad = "!", id 0)

from OpenAI CLIP's BPE merges file `bpe_simple_vocab_16e6.txt.gz` (MIT licence), which the
`open_clip_torch` wheel ships. The vocabulary is built as CLIP's SimpleTokenizer builds it: the 256
byte symbols, the same with </w>, the first 48,894 merges joined, then <|startoftext|> and
<|endoftext|> (49,408 ids, the vocab.json of openai/clip-vit-large-patch14). The script checks the
result with transformers' CLIPTokenizer against SimpleTokenizer-style expectations.
Run: .venv/bin/python Tools/make_clip_tokenizers.py [--bpe PATH]   (default: pip download open_clip_torch)
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Models", "tokenizers")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable-character table (as CLIP uses it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def bpe_file(path):
    if path:
        return gzip.open(path, "rt", encoding="utf-8").read()
    with tempfile.TemporaryDirectory() as d:
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, "open_clip_torch"])
        wheel = [f for f in os.listdir(d) if f.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(d, wheel)) as z:
            return gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", help="bpe_simple_vocab_16e6.txt.gz")
    a = ap.parse_args()
    lines = bpe_file(a.bpe).split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    ids = {tok: i for i, tok in enumerate(vocab)}
    for name, pad in (("clip", "<|endoftext|>"), ("clip-pad0", "!")):
        folder = os.path.join(ROOT, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(ids, f, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
        config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
                  "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad, "do_lower_case": True}
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=1)
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "clip"))
    ids_ = tok("a photo of a cat")["input_ids"]
    # Well-known CLIP ids: <|startoftext|> 49406, "a</w>" 320, "photo</w>" 1125, "of</w>" 539, "cat</w>" 2368, <|endoftext|> 49407.
    assert ids_ == [49406, 320, 1125, 539, 320, 2368, 49407], ids_
    assert CLIPTokenizer.from_pretrained(os.path.join(ROOT, "clip-pad0")).pad_token_id == 0
    print("wrote", ROOT, "ids check OK")


if __name__ == "__main__":
    main()
