"""The diffusers side of `jpbench pipeline`: a full-size SD1.5 pipeline with random weights.

  make --workdir DIR      writes DIR/sd15 (StableDiffusionPipeline: CLIP-L-size text encoder, SD1.5 UNet,
                          SD VAE, LCMScheduler; f32 random weights; the CLIP tokenizer files of the test
                          fixtures) and DIR/taesd (AutoencoderTiny, random weights)
  run --workdir DIR [--taesd] --steps N --size S --seed K
                          loads the pipeline, runs one warm-up-free generation and prints one JSON line:
                          seconds of the pipeline call (encode + denoise + decode), load seconds, peak RSS

Run by `jpbench pipeline --python .venv/bin/python`, which times jpgen on the same folders in the same run.
"""
import argparse
import json
import os
import resource
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "Tests", "Fixtures", "Tokenization", "clip-sd1")


def make(workdir):
    import torch
    from diffusers import (AutoencoderKL, AutoencoderTiny, LCMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    folder = os.path.join(workdir, "sd15")
    if not os.path.exists(os.path.join(folder, "model_index.json")):
        tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
        torch.manual_seed(0)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        unet = UNet2DConditionModel(attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
                                    cross_attention_dim=768, layers_per_block=2, sample_size=64)
        vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            sample_size=512)
        scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                 set_alpha_to_one=True, steps_offset=1)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.save_pretrained(folder, safe_serialization=True)
        tok = os.path.join(folder, "tokenizer")
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(TOKENIZER, name), os.path.join(tok, name))
        if os.path.exists(os.path.join(tok, "tokenizer.json")):
            os.remove(os.path.join(tok, "tokenizer.json"))
    taesd = os.path.join(workdir, "taesd")
    if not os.path.exists(os.path.join(taesd, "config.json")):
        torch.manual_seed(0)
        AutoencoderTiny().save_pretrained(taesd, safe_serialization=True)


def run(workdir, taesd, steps, size, seed, threads):
    import torch
    from diffusers import AutoencoderTiny, StableDiffusionPipeline
    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(workdir, "sd15"))
    if taesd:
        pipe.vae = AutoencoderTiny.from_pretrained(os.path.join(workdir, "taesd"))
    load = time.time() - t0
    t0 = time.time()
    with torch.no_grad():
        pipe("江ノ島と富士山が見える風景", num_inference_steps=steps, guidance_scale=1.0, width=size, height=size,
             generator=torch.Generator().manual_seed(seed), output_type="np")
    seconds = time.time() - t0
    print(json.dumps({"impl": "diffusers", "vae": "taesd" if taesd else "kl", "seconds": seconds, "load_seconds": load,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "threads": torch.get_num_threads()}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "run"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--taesd", action="store_true")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.command == "make":
        make(a.workdir)
    else:
        run(a.workdir, a.taesd, a.steps, a.size, a.seed, a.threads)


if __name__ == "__main__":
    main()
