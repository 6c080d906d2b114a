"""Times diffusers and `jpbench unet` / `jpbench vae` on the same full-size random-weight models.

Writes diffusers folders (random weights, f32) under --workdir: SD1.5 UNet, SD VAE, TAESD, and with
--sdxl the SDXL UNet; times one diffusers forward (after a warm-up unless --no-warm-up) in a
subprocess, then runs jpbench on the same folder, and prints one JSON line per model with both
times, GFLOP/s, peak RSS and the ratio jpgen/diffusers. With --rounds N the two sides alternate N
times each (diffusers first in odd rounds, jpbench first in even ones, so that neither always runs
straight after the other's large process), and the line gives every time, the best and the median.
Run: .venv/bin/python Tools/bench_unet_vae.py --jpbench .build/release/jpbench [--sdxl] [--rounds 2]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SD15_UNET = dict(attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768,
                 layers_per_block=2, sample_size=64)
SDXL_UNET = dict(addition_embed_type="text_time", addition_time_embed_dim=256, attention_head_dim=[5, 10, 20],
                 block_out_channels=[320, 640, 1280], cross_attention_dim=2048,
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=2,
                 projection_class_embeddings_input_dim=2816, sample_size=128, transformer_layers_per_block=[1, 2, 10],
                 use_linear_projection=True)
SD_VAE = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)


def make(kind, cfg, folder):
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    if os.path.exists(os.path.join(folder, "config.json")):
        return
    torch.manual_seed(0)
    cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "taesd": AutoencoderTiny}[kind]
    cls(**cfg).save_pretrained(folder, safe_serialization=True)


def flops_of(run):
    """FLOPs of one call counted by torch's FlopCounterMode (convs, matmuls and attention). Its table
    has no entry for the CPU's fused attention op (it counted 0 for scaled_dot_product_attention on
    CPU tensors: SDXL's step came to 5977 GFLOP without its 759 GFLOP of attention), so that op is
    counted here with torch's own attention formula."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = cpu_attention
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        run()
    return counter.get_total_flops()


def time_diffusers(kind, folder, size):
    """Runs in a child process: seconds, GFLOP and peak RSS (MB) of one forward."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    torch.manual_seed(1)
    lat = size // 8
    with torch.no_grad():
        if kind == "unet":
            model = UNet2DConditionModel.from_pretrained(folder).eval()
            c = model.config
            sample = torch.randn(1, 4, lat, lat)
            ctx = torch.randn(1, 77, c.cross_attention_dim)
            added = None
            if c.addition_embed_type == "text_time":
                added = {"text_embeds": torch.randn(1, c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim),
                         "time_ids": torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)}
            run = lambda: model(sample, 500, ctx, added_cond_kwargs=added)
        else:
            cls = AutoencoderKL if kind == "vae" else AutoencoderTiny
            model = cls.from_pretrained(folder).eval()
            latents = torch.randn(1, 4, lat, lat)
            run = lambda: model.decode(latents)
        gflop = flops_of(run) / 1e9          # this counting pass is also the warm-up
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "gflop": gflop, "peak_rss_mb": peak}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jpbench", default=".build/release/jpbench")
    ap.add_argument("--workdir", default="/tmp/jpgen-bench-unet-vae")
    ap.add_argument("--sdxl", action="store_true", help="also the SDXL UNet at 1024 (slow)")
    ap.add_argument("--only", nargs="*", default=["sd15-unet", "sd-vae", "taesd"])
    ap.add_argument("--no-warm-up", action="store_true")
    ap.add_argument("--rounds", type=int, default=1, help="alternating runs of each side (best and median reported)")
    ap.add_argument("--jpbench-args", nargs="*", default=[], help="extra jpbench arguments, e.g. --winograd off")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        time_diffusers(args.child[0], args.child[1], int(args.child[2]))
        return
    cases = [("sd15-unet", "unet", SD15_UNET, 512), ("sd-vae", "vae", SD_VAE, 512), ("taesd", "taesd", {}, 512)]
    if args.sdxl:
        cases.append(("sdxl-unet", "unet", SDXL_UNET, 1024))
    for name, kind, cfg, size in cases:
        if name not in args.only and not (name == "sdxl-unet" and args.sdxl):
            continue
        folder = os.path.join(args.workdir, name)
        make(kind, cfg, folder)
        extra = ["--no-warm-up"] if args.no_warm_up else []

        def diffusers_run():
            ref = subprocess.run([sys.executable, __file__, "--child", kind, folder, str(size)] + extra,
                                 capture_output=True, text=True, check=True)
            return json.loads(ref.stdout.strip().splitlines()[-1])

        def jpgen_run(gflop):
            sub = "unet" if kind == "unet" else "vae"
            out = subprocess.run([args.jpbench, sub, "--folder", folder, "--size", str(size), "--gflop", str(gflop)]
                                 + extra + args.jpbench_args, capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        theirs_runs, ours_runs = [], []
        for r in range(max(1, args.rounds)):
            if r % 2 == 0:
                theirs_runs.append(diffusers_run())
                ours_runs.append(jpgen_run(theirs_runs[0]["gflop"]))
            else:
                ours_runs.append(jpgen_run(theirs_runs[0]["gflop"]))
                theirs_runs.append(diffusers_run())
        gflop = theirs_runs[0]["gflop"]
        ts, os_ = [t["seconds"] for t in theirs_runs], [o["seconds"] for o in ours_runs]
        best_t, best_o = min(ts), min(os_)
        med_t, med_o = statistics.median(ts), statistics.median(os_)
        print(json.dumps({
            "model": name, "size": size, "gflop": round(gflop, 1), "rounds": len(ts),
            "jpgen_seconds": round(best_o, 3), "diffusers_seconds": round(best_t, 3),
            "jpgen_median_seconds": round(med_o, 3), "diffusers_median_seconds": round(med_t, 3),
            "jpgen_runs": [round(x, 3) for x in os_], "diffusers_runs": [round(x, 3) for x in ts],
            "jpgen_gflops": round(gflop / best_o, 1), "diffusers_gflops": round(gflop / best_t, 1),
            "jpgen_peak_rss_mb": round(max(o["peak_rss_mb"] for o in ours_runs)),
            "diffusers_peak_rss_mb": round(max(t["peak_rss_mb"] for t in theirs_runs)),
            "time_ratio_jpgen_over_diffusers": round(best_o / best_t, 3),
            "median_time_ratio": round(med_o / med_t, 3),
            "winograd": ours_runs[0].get("winograd"),
            "load_average_1min": round(os.getloadavg()[0], 2),   # other work on the machine meanwhile
        }), flush=True)


if __name__ == "__main__":
    main()
