"""Trains the demo-world model family and writes it under Models/ (see README.md).

Stages (each writes its outputs under --work and is skipped when they exist; --stage NAME runs one, --force reruns):
  data, tokenizer, classifier, vae, text (text-encoder pretraining), base (UNet + text-encoder fine-tune), lcm,
  styles, scorer, export, report.
CPU by default (all cores), CUDA when present. --fast: a smoke run (tiny data, few steps).
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import world  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SYSTEM_IPADIC = "/var/lib/mecab/dic/ipadic-utf8"
MAX_LEN = 32
GUIDANCE = 5.0  # classifier-free guidance of the base model's DDIM sampling
CROSS = 64  # UNet cross-attention width = text encoder projection width
# DDPM's linear schedule (Ho et al. 2020) rather than SD's scaled_linear: at t = 999 it leaves
# sqrt(alpha_bar) = 0.006 of the image instead of 0.068. On 16x16 latents SD's schedule leaks the
# image's low frequencies into pure noise, and the seed, not the prompt, then decided the layout
# (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed").
BETAS = dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")

P = None  # parsed arguments
DEV = "cpu"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def seed_all(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def wdir(*p):
    d = Path(P.work).joinpath(*p)
    return d


def done(name):
    return wdir("done", name).exists() and not (P.force and P.stage == name)


def mark(name, seconds, extra=None):
    wdir("done").mkdir(parents=True, exist_ok=True)
    times = json.loads(wdir("times.json").read_text()) if wdir("times.json").exists() else {}
    times[name] = {"seconds": round(seconds, 1), **(extra or {})}
    wdir("times.json").write_text(json.dumps(times, indent=1, ensure_ascii=False))
    wdir("done", name).write_text(str(seconds))


# ------------------------------------------------------------------ data

def stage_data():
    n_train, n_test, n_held = (400, 120, 60) if P.fast else (P.n_train, 600, 300)
    out = {}
    for split, n, seed, held in [("train", n_train, 1, False), ("test", n_test, 2, False), ("held", n_held, 3, True)]:
        items = world.dataset(n, seed * 1000 + P.seed, held_out=held)
        imgs = np.stack([world.render(sc, s) for sc, s in items])
        attrs = np.stack([world.attributes(sc) for sc, _ in items])
        caps = [world.captions(sc, random.Random(s)) for sc, s in items]
        evalcaps = [eval_caption(sc) for sc, _ in items]
        np.savez_compressed(wdir(f"{split}.npz"), images=imgs, attrs=attrs)
        (wdir(f"{split}.json")).write_text(json.dumps({"captions": caps, "eval_captions": evalcaps,
                                                        "scenes": [sc for sc, _ in items]}, ensure_ascii=False))
        out[split] = n
        log("data", split, n)
    return out


def eval_caption(sc):
    """A caption naming every true major element, the time and the style (for attribute agreement)."""
    names = [e for e in world._names(sc) if e in world.MAJOR or e in sc["subjects"]]
    words = [world.JA["fuji_snow"][0] if (e == "fuji" and sc["snowcap"]) else world.JA[e][0] for e in names]
    return world.JA_TIME[sc["time"]][0] + "の" + "と".join(words) + "、" + world.JA_STYLE[sc["style"]][0]


def load(split):
    z = np.load(wdir(f"{split}.npz"))
    meta = json.loads(wdir(f"{split}.json").read_text())
    return z["images"], z["attrs"], meta


# ------------------------------------------------------------------ tokenizer

def mecab_words(texts):
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer
    m = MecabTokenizer(do_lower_case=True, normalize_text=True, mecab_dic=None, mecab_option=f"-r /etc/mecabrc -d {SYSTEM_IPADIC}")
    return [m.tokenize(t) for t in texts]


def stage_tokenizer():
    _, _, meta = load("train")
    texts = [c for cs in meta["captions"] for c in cs] + list(meta["eval_captions"])
    for s in ("test", "held"):
        texts += load(s)[2]["eval_captions"]  # eval prompts' words are world words too
    suite = ROOT / "Examples/prompts/demo-world.yaml"
    if suite.exists():
        import yaml
        for p in yaml.safe_load(suite.read_text())["prompts"]:
            texts += [p["ja"], p.get("en", "")]
    freq = {}
    for ws in mecab_words(texts):
        for w in ws:
            freq[w] = freq.get(w, 0) + 1
    chars = sorted({ch for w in freq for ch in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(freq, key=lambda w: (-freq[w], w))
    vocab += [c for c in chars if c not in vocab] + ["##" + c for c in chars]
    d = wdir("tokenizer")
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    cfg = {"tokenizer_class": "BertJapaneseTokenizer", "do_lower_case": True, "word_tokenizer_type": "mecab",
           "subword_tokenizer_type": "wordpiece", "mecab_kwargs": {"mecab_dic": "ipadic"}, "model_max_length": MAX_LEN,
           "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
           "do_subword_tokenize": True, "do_word_tokenize": True}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1, ensure_ascii=False))
    (d / "special_tokens_map.json").write_text(json.dumps({k: cfg[k] for k in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")}, indent=1))
    tok = tokenizer()
    unk = sum(tok(t)["input_ids"].count(1) for t in texts)
    # transformers' mecab_dic=ipadic (the pip ipadic) against the system ipadic-utf8 JPGen uses
    sys_words = mecab_words(texts)
    same = sum(tok.word_tokenizer.tokenize(t) == w for t, w in zip(texts, sys_words))
    log("tokenizer", len(vocab), "tokens; unk in captions:", unk, "; pip/system ipadic agree on", same, "/", len(texts))
    return {"vocab": len(vocab), "unk_in_captions": unk, "ipadic_agreement": f"{same}/{len(texts)}"}


_TOK = None


def tokenizer():
    global _TOK
    if _TOK is None:
        from transformers import BertJapaneseTokenizer
        _TOK = BertJapaneseTokenizer.from_pretrained(str(wdir("tokenizer")))
    return _TOK


def encode(texts):
    t = tokenizer()(list(texts), padding="max_length", truncation=True, max_length=MAX_LEN, return_tensors="pt")
    return t["input_ids"].to(DEV), t["attention_mask"].to(DEV)


# ------------------------------------------------------------------ classifier

class AttrNet(nn.Module):
    def __init__(self):
        super().__init__()
        c = [3, 32, 64, 96, 128]
        layers = []
        for i in range(4):
            layers += [nn.Conv2d(c[i], c[i + 1], 3, padding=1), nn.GroupNorm(8, c[i + 1]), nn.SiLU(),
                       nn.Conv2d(c[i + 1], c[i + 1], 3, padding=1), nn.SiLU(), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(128 * 16, len(world.ATTRIBUTES))

    def forward(self, x):  # x: [B, 3, 64, 64] in [-1, 1]
        return self.head(self.body(x).flatten(1))


NE = len(world.ELEMENTS)
NT = len(world.TIMES)


def attr_loss(logits, y, element_weight=1.0):
    """Mean BCE over the elements (times element_weight) + cross-entropy of time + of style."""
    l = element_weight * F.binary_cross_entropy_with_logits(logits[:, :NE], y[:, :NE])
    l = l + F.cross_entropy(logits[:, NE:NE + NT], y[:, NE:NE + NT].argmax(1))
    return l + F.cross_entropy(logits[:, NE + NT:], y[:, NE + NT:].argmax(1))


def attr_predict(logits):
    p = torch.zeros_like(logits)
    p[:, :NE] = (logits[:, :NE] > 0).float()
    p[:, NE:NE + NT] = F.one_hot(logits[:, NE:NE + NT].argmax(1), NT).float()
    p[:, NE + NT:] = F.one_hot(logits[:, NE + NT:].argmax(1), len(world.STYLES)).float()
    return p


def to_t(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(DEV)


def augment(x):
    if random.random() < 0.5:
        x = x.flip(3)
    return x


def degrade(x):
    """Half of a batch blurred (Gaussian, sigma 0.3-1.2 px) with a little noise: generated images pass
    through the VAE and are softer than renders; the classifier must read them as well."""
    sel = torch.rand(x.shape[0], device=x.device) < 0.5
    if not sel.any():
        return x
    sigma = random.uniform(0.3, 1.2)
    r = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :]).expand(3, 1, 5, 5)
    y = F.conv2d(F.pad(x[sel], (2, 2, 2, 2), mode="reflect"), k, groups=3)
    y = y + 0.03 * torch.randn_like(y)
    x = x.clone()
    x[sel] = y.clamp(-1, 1)
    return x


def stage_classifier():
    seed_all(P.seed)
    X, Y, _ = load("train")
    Xt, Yt, _ = load("test")
    net = AttrNet().to(DEV)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    steps = 60 if P.fast else P.cls_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    bs = 64
    for step in range(steps):
        idx = np.random.randint(0, len(X), bs)
        loss = attr_loss(net(degrade(augment(to_t(X[idx])))), torch.from_numpy(Y[idx]).to(DEV))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            log("classifier", step, float(loss))
    torch.save(net.state_dict(), wdir("classifier.pt"))
    acc = classifier_accuracy(net, Xt, Yt)
    acc_h = classifier_accuracy(net, *load("held")[:2])
    log("classifier accuracy", acc, acc_h)
    return {"steps": steps, "test_attribute_accuracy": acc, "heldout_attribute_accuracy": acc_h}


@torch.no_grad()
def classify(net, imgs):
    net.eval()
    out = torch.cat([attr_predict(net(to_t(imgs[i:i + 128]))) for i in range(0, len(imgs), 128)])
    return out.cpu().numpy()


def classifier_accuracy(net, X, Y):
    pr = classify(net, X)
    el = (pr[:, :NE] == Y[:, :NE]).mean()
    tm = (pr[:, NE:NE + NT].argmax(1) == Y[:, NE:NE + NT].argmax(1)).mean()
    st = (pr[:, NE + NT:].argmax(1) == Y[:, NE + NT:].argmax(1)).mean()
    return {"elements": round(float(el), 4), "time": round(float(tm), 4), "style": round(float(st), 4),
            "mean": round(float((el * NE + tm + st) / (NE + 2)), 4)}


# The attribute classifier as shipped (float32, so that judge.py reads images exactly as the training run's
# classifier does): judge.py works on a fresh clone without the classifier stage's quarter hour.
SHIPPED_CLASSIFIER = ROOT / "Models" / "demo-judge" / "attribute-classifier.safetensors"


def load_classifier():
    net = AttrNet().to(DEV)
    if wdir("classifier.pt").exists():
        net.load_state_dict(torch.load(wdir("classifier.pt"), map_location=DEV))
    else:
        from safetensors.torch import load_file
        net.load_state_dict(load_file(str(SHIPPED_CLASSIFIER), device=str(DEV)))
    return net


def export_classifier():
    from safetensors.torch import save_file
    SHIPPED_CLASSIFIER.parent.mkdir(parents=True, exist_ok=True)
    sd = torch.load(wdir("classifier.pt"), map_location="cpu")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(SHIPPED_CLASSIFIER),
              metadata={"format": "pt", "classes": ",".join(world.ATTRIBUTES)})


# ------------------------------------------------------------------ VAE

def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
                         latent_channels=4, norm_num_groups=16, sample_size=64)


def stage_vae():
    from diffusers import AutoencoderKL
    seed_all(P.seed)
    X, _, _ = load("train")
    vae = make_vae().to(DEV)
    opt = torch.optim.AdamW(vae.parameters(), 1e-3)
    steps = 40 if P.fast else P.vae_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
    for step in range(steps):
        x = augment(to_t(X[np.random.randint(0, len(X), 32)]))
        post = vae.encode(x).latent_dist
        z = post.sample()
        rec = vae.decode(z).sample
        kl = post.kl().mean() / (64 * 64 * 3)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl * 64 * 64 * 3 / 1024
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            log("vae", step, float(loss))
    vae.eval()
    with torch.no_grad():
        z = torch.cat([vae.encode(to_t(X[i:i + 64])).latent_dist.mean for i in range(0, min(len(X), 512), 64)])
        sf = float(1.0 / z.std())
        Xt = load("test")[0][:128]
        rec = vae.decode(vae.encode(to_t(Xt)).latent_dist.mean).sample
        psnr = float(10 * torch.log10(4 / F.mse_loss(rec.clamp(-1, 1), to_t(Xt))))
    vae.register_to_config(scaling_factor=sf)
    vae.save_pretrained(wdir("vae"))
    log("vae scaling", sf, "psnr", psnr)
    return {"steps": steps, "scaling_factor": round(sf, 4), "test_psnr_db": round(psnr, 2)}


def load_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL.from_pretrained(wdir("vae")).to(DEV).eval()


@torch.no_grad()
def latents_of(vae, X):
    sf = vae.config.scaling_factor
    return torch.cat([vae.encode(to_t(X[i:i + 64])).latent_dist.mean * sf for i in range(0, len(X), 64)])


# ------------------------------------------------------------------ text encoder + UNet

def text_encoder_class():
    from transformers import BertModel, BertPreTrainedModel

    class BertSeriesModelWithTransformation(BertPreTrainedModel):
        """BERT + per-token linear `transformation` to the UNet's cross-attention width (AltDiffusion-style).
        Keys: bert.* (BertModel without pooler) and transformation.{weight,bias}."""
        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.transformation = nn.Linear(config.hidden_size, config.project_dim)
            self.post_init()

        def forward(self, input_ids, attention_mask=None):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.transformation(h)  # projection_state [B, T, project_dim]
    return BertSeriesModelWithTransformation


def make_text_encoder():
    from transformers import BertConfig
    cfg = BertConfig(vocab_size=len(tokenizer()), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=MAX_LEN, type_vocab_size=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg.project_dim = CROSS
    cfg.has_pre_transformation = False
    cfg.use_attention_mask = True  # pipelines pass the padding mask (diffusers reads this key)
    cfg.architectures = ["BertSeriesModelWithTransformation"]
    return text_encoder_class()(cfg)


def load_text_encoder(path):
    cls = text_encoder_class()
    return cls.from_pretrained(path).to(DEV).eval()


def make_unet():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(64, 128, 128),
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=CROSS, attention_head_dim=8, norm_num_groups=16)


def ddpm():
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, **BETAS,
                         clip_sample=False, prediction_type="epsilon")


class EMA:
    """Exponential moving average of a module's parameters (the weights that are saved and sampled)."""
    def __init__(self, net, decay):
        import copy
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net, step):
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up: early steps follow the net closely
        for pe, p in zip(self.net.parameters(), net.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1 - d)


def train_unet(unet, te, lat, caps, steps, lr, name, te_lr=None, ema_decay=None):
    """Epsilon-prediction training with min-SNR-5 loss weights (Hang et al. 2023), 10% caption dropout for
    classifier-free guidance, horizontal flips. te_lr=None freezes the text encoder. Returns the EMA copy of the
    UNet when ema_decay is given, else the UNet."""
    sch = ddpm()
    groups = [{"params": list(unet.parameters()), "lr": lr}]
    if te_lr:
        groups.append({"params": list(te.parameters()), "lr": te_lr})
    params = [q for g in groups for q in g["params"]]
    opt = torch.optim.AdamW(groups, lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=steps,
                                                pct_start=max(0.05, 2.5 / steps))
    ac = sch.alphas_cumprod.to(DEV)
    snr = ac / (1 - ac)
    weight = snr.clamp(max=5.0) / snr  # min-SNR-gamma for epsilon prediction
    ema = EMA(unet, ema_decay) if ema_decay else None
    unet.train()
    te.train(bool(te_lr)).requires_grad_(bool(te_lr))
    bs = P.batch
    for step in range(steps):
        idx = np.random.randint(0, len(lat), bs)
        z0 = lat[idx]
        flip = torch.rand(bs, device=DEV) < 0.5
        z0 = torch.where(flip[:, None, None, None], z0.flip(3), z0)  # latents of a flip ~ flipped latents
        texts = ["" if random.random() < 0.1 else random.choice(caps[i]) for i in idx]
        ids, mask = encode(texts)
        with torch.set_grad_enabled(bool(te_lr)):
            ctx = te(ids, mask)
        t = torch.randint(0, 1000, (bs,), device=DEV)
        noise = torch.randn_like(z0)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        err = (unet(zt, t, encoder_hidden_states=ctx).sample - noise).pow(2).mean((1, 2, 3))
        loss = (weight[t] * err).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if ema:
            ema.update(unet, step)
        if step % 100 == 0:
            log(name, step, loss.item())
    unet.eval()
    te.eval()
    return ema.net if ema else unet


def stage_text():
    """Pretrains the text encoder to predict a scene's attributes from any of its captions (masked mean of the
    per-token projection -> linear head), so that the UNet is conditioned on informative tokens from its first
    step, as real pipelines use a pretrained, frozen text encoder."""
    seed_all(P.seed)
    _, A, meta = load("train")
    te = make_text_encoder().to(DEV).train()
    head = nn.Linear(CROSS, len(world.ATTRIBUTES)).to(DEV)
    params = list(te.parameters()) + list(head.parameters())
    steps = 60 if P.fast else P.text_steps
    opt = torch.optim.AdamW(params, 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)

    def predict(texts):
        ids, mask = encode(texts)
        h = te(ids, mask)
        m = mask[:, :, None].float()
        return head((h * m).sum(1) / m.sum(1))

    for step in range(steps):
        idx = np.random.randint(0, len(A), 64)
        # Elements weighted by their count: with a mean over 15 elements the time and style terms dominated and
        # the encoder learnt to tell 夜 from 昼 but hardly 富士山 from 五重塔 (cosine 0.998 between the two prompts).
        loss = attr_loss(predict([random.choice(meta["captions"][i]) for i in idx]), torch.from_numpy(A[idx]).to(DEV),
                         element_weight=NE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            log("text", step, float(loss))
    te.eval()
    # how well the eval captions' named attributes are recovered (time, style, named major elements)
    _, At, mt = load("test")
    with torch.no_grad():
        pr = torch.cat([attr_predict(predict(mt["eval_captions"][i:i + 128])) for i in range(0, len(At), 128)]).numpy()
    te.save_pretrained(wdir("text_encoder_pre"))
    acc = round(float(agreement(pr, At)), 4)
    log("text encoder: attribute agreement from eval captions", acc)
    return {"steps": steps, "eval_caption_agreement": acc}


def stage_base():
    seed_all(P.seed)
    X, _, meta = load("train")
    vae = load_vae()
    lat = latents_of(vae, X)
    te = load_text_encoder(wdir("text_encoder_pre"))
    unet = make_unet().to(DEV)
    log("unet params", sum(p.numel() for p in unet.parameters()), "te params", sum(p.numel() for p in te.parameters()))
    steps = 60 if P.fast else P.unet_steps
    ema = train_unet(unet, te, lat, meta["captions"], steps, P.unet_lr, "base", te_lr=P.unet_lr * 0.1, ema_decay=0.999)
    ema.save_pretrained(wdir("base_unet"))
    te.save_pretrained(wdir("text_encoder"))
    return {"steps": steps, "lr": P.unet_lr, "ema": 0.999, "min_snr_gamma": 5,
            "unet_params": sum(p.numel() for p in unet.parameters()),
            "text_encoder_params": sum(p.numel() for p in te.parameters())}


def load_unet(path):
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel.from_pretrained(path).to(DEV).eval()


# ------------------------------------------------------------------ LCM distillation

def lcm_boundary(t, sigma_data=0.5, scale=10.0):
    """c_skip, c_out of diffusers' LCMScheduler (timestep_scaling = 10)."""
    st = t.float() * scale
    return sigma_data ** 2 / (st ** 2 + sigma_data ** 2), st / (st ** 2 + sigma_data ** 2) ** 0.5


def stage_lcm():
    """Latent consistency distillation (Luo et al. 2023): DDIM solver over a 50-step skip schedule, teacher with
    fixed guidance w (the student has none), EMA target network, x0-parameterised consistency function."""
    import copy
    seed_all(P.seed)
    X, _, meta = load("train")
    vae = load_vae()
    lat = latents_of(vae, X)
    te = load_text_encoder(wdir("text_encoder"))
    teacher = load_unet(wdir("base_unet"))
    student = copy.deepcopy(teacher).train()
    target = copy.deepcopy(teacher).eval()
    for m in (teacher, target, te):
        m.requires_grad_(False)
    ac = ddpm().alphas_cumprod.to(DEV)
    k = 20  # 1000 / 50 steps
    w = P.lcm_guidance
    steps = 40 if P.fast else P.lcm_steps
    opt = torch.optim.AdamW(student.parameters(), 1e-4, weight_decay=0.0)
    uncond = te(*encode([""]))
    bs = P.batch

    def x0_eps(z, t, eps):
        a = ac[t][:, None, None, None]
        return (z - (1 - a).sqrt() * eps) / a.sqrt()

    def f(net, z, t, ctx):
        eps = net(z, t, encoder_hidden_states=ctx).sample
        cs, co = lcm_boundary(t)
        return cs[:, None, None, None] * z + co[:, None, None, None] * x0_eps(z, t, eps)

    for step in range(steps):
        idx = np.random.randint(0, len(lat), bs)
        z0 = lat[idx]
        texts = [random.choice(meta["captions"][i]) for i in idx]
        with torch.no_grad():
            ctx = te(*encode(texts))
        n = torch.randint(1, 50, (bs,), device=DEV)
        t = n * k + k - 1          # 39 ... 999
        tp = t - k                 # previous point on the skip schedule
        noise = torch.randn_like(z0)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        with torch.no_grad():
            e_c = teacher(zt, t, encoder_hidden_states=ctx).sample
            e_u = teacher(zt, t, encoder_hidden_states=uncond.expand(bs, -1, -1)).sample
            eps = e_u + w * (e_c - e_u)
            x0 = x0_eps(zt, t, eps)
            ap = ac[tp][:, None, None, None]
            zp = ap.sqrt() * x0 + (1 - ap).sqrt() * eps  # DDIM step t -> tp
            tgt = f(target, zp, tp, ctx)
        pred = f(student, zt, t, ctx)
        loss = (torch.sqrt((pred - tgt) ** 2 + 1e-3 ** 2) - 1e-3).mean()  # pseudo-Huber
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pt, ps in zip(target.parameters(), student.parameters()):
                pt.mul_(0.95).add_(ps, alpha=0.05)
        if step % 100 == 0:
            log("lcm", step, loss.item())
    target.save_pretrained(wdir("lcm_unet"))
    return {"steps": steps, "teacher_guidance": w}


# ------------------------------------------------------------------ style fine-tunes

def stage_styles():
    X, A, meta = load("train")
    vae = load_vae()
    out = {}
    for style in ("ukiyoe", "watercolor"):
        seed_all(P.seed)
        col = world.ATTRIBUTES.index("style:" + style)
        sel = np.where(A[:, col] > 0)[0]
        lat = latents_of(vae, X[sel])
        caps = [meta["captions"][i] for i in sel]
        te = load_text_encoder(wdir("text_encoder")).requires_grad_(False)
        unet = load_unet(wdir("base_unet"))
        steps = 20 if P.fast else P.style_steps
        train_unet(unet, te, lat, caps, steps, 2e-4, "style-" + style)
        unet.save_pretrained(wdir(f"{style}_unet"))
        out[style] = {"steps": steps, "images": int(len(sel))}
    return out


# ------------------------------------------------------------------ scorer

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def clip_pixels(imgs):
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    m, s = torch.tensor(CLIP_MEAN)[None, :, None, None], torch.tensor(CLIP_STD)[None, :, None, None]
    return ((x - m) / s).to(DEV)


def stage_scorer():
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig
    seed_all(P.seed)
    X, _, meta = load("train")
    V = len(tokenizer())
    tc = CLIPTextConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        max_position_embeddings=MAX_LEN, pad_token_id=0, bos_token_id=2, eos_token_id=3, projection_dim=64)
    vc = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                          image_size=64, patch_size=8, projection_dim=64)
    cfg = CLIPConfig(text_config=tc.to_dict(), vision_config=vc.to_dict(), projection_dim=64)
    model = CLIPModel(cfg).to(DEV)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.05)
    steps = 40 if P.fast else P.scorer_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps, pct_start=max(0.05, 2.5 / steps))
    bs = 64
    for step in range(steps):
        idx = np.random.choice(len(X), bs, replace=False)
        captions = [with_element(meta["scenes"][i], random.choice(meta["captions"][i])) for i in idx]
        ids, mask = encode(captions)
        px = clip_pixels(X[idx])
        if random.random() < 0.5:
            px = px.flip(3)
        # Hard negatives: each image's caption with a major element added that the scene lacks ("..., 太陽"
        # without a sun). Without them a batch rarely holds two scenes that differ by one small element, and
        # the scorer learns to ignore the sun: the unprompted penalty of evolve asks exactly that question.
        neg_ids, neg_mask = encode([hard_negative(meta["scenes"][i], cap) for i, cap in zip(idx, captions)])
        ie = F.normalize(clip_features(model.get_image_features(pixel_values=px)), dim=-1)
        te = F.normalize(clip_features(model.get_text_features(input_ids=torch.cat([ids, neg_ids]),
                                                               attention_mask=torch.cat([mask, neg_mask]))), dim=-1)
        logits = model.logit_scale.exp() * ie @ te.T                      # [bs, 2 bs]
        # scenes with identical captions are not negatives of each other: soft targets over equal eval captions
        ec = [meta["eval_captions"][i] for i in idx]
        same = torch.tensor([[a == b for b in ec] for a in ec], dtype=torch.float32, device=DEV)
        tgt = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, torch.cat([tgt, torch.zeros_like(tgt)], 1))
                + F.cross_entropy(logits[:, :bs].T, tgt)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0:
            log("scorer", step, float(loss))
    d = wdir("scorer")
    model.eval().save_pretrained(d)
    tokenizer().save_pretrained(d)
    from transformers import CLIPImageProcessor
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}, image_mean=CLIP_MEAN,
                       image_std=CLIP_STD, do_convert_rgb=True).save_pretrained(d)
    return {"steps": steps, **scorer_metrics(model)}


def clip_features(out):
    """Projected embeddings from CLIPModel.get_*_features (a tensor in transformers 4, the pooler_output
    of a model output in 5)."""
    return out if torch.is_tensor(out) else out.pooler_output


def append_element(caption, e, rng=random):
    """The caption with the element's name added at its end (English captions get the English name)."""
    if caption.isascii():
        return caption + ", " + world.EN[e]
    return caption + rng.choice(["、", "と"]) + rng.choice(world.JA[e])


def hard_negative(sc, caption, rng=random):
    """The caption with one major element added that the scene does not show."""
    return append_element(caption, rng.choice([e for e in world.MAJOR if not sc[e]]), rng)


def with_element(sc, caption, rng=random):
    """Half the time, the caption with a major element added that the scene does show (other than its
    subjects), so that an added element is no cue by itself and only its presence in the image decides."""
    shown = [e for e in world.MAJOR if sc[e] and e not in sc["subjects"]]
    return append_element(caption, rng.choice(shown), rng) if shown and rng.random() < 0.5 else caption


@torch.no_grad()
def element_preferences(model, n=300):
    """For test scenes and each major element that is not a subject: the scorer's preference for the
    prompt (time, subjects, style) with the element added over the prompt alone, the two-way softmax that
    evolve's unprompted penalty uses; mean over scenes that show the element and over those that do not."""
    Xt, _, mt = load("test")
    n = min(n, len(Xt))
    ie = F.normalize(clip_features(model.get_image_features(pixel_values=clip_pixels(Xt[:n]))), dim=-1)
    scale = model.logit_scale.exp()
    pref = {e: ([], []) for e in world.MAJOR}
    for i in range(n):
        sc = mt["scenes"][i]
        base = (world.JA_TIME[sc["time"]][0] + "の" + "と".join(world.JA[s][0] for s in sc["subjects"]) + "、"
                + world.JA_STYLE[sc["style"]][0])
        others = [e for e in world.MAJOR if e not in sc["subjects"]]
        te = F.normalize(clip_features(model.get_text_features(*encode([base] + [base + "、" + world.JA[e][0] for e in others]))), dim=-1)
        cos = te @ ie[i]
        for e, c in zip(others, cos[1:]):
            pref[e][int(bool(sc[e]))].append(float(torch.sigmoid(scale * (c - cos[0]))))
    mean = lambda v: round(float(np.mean(v)), 3) if v else None
    return {e: {"absent": mean(a), "present": mean(p)} for e, (a, p) in pref.items()}


@torch.no_grad()
def scorer_metrics(model, n=100):
    """Caption retrieval: for each of n test images, rank the eval captions of those n images (top-1, top-5);
    a hit is any caption equal to the image's own (identical scene descriptions are indistinguishable)."""
    Xt, _, mt = load("test")
    n = min(n, len(Xt))
    caps = mt["eval_captions"][:n]
    ids, mask = encode(caps)
    out = model(input_ids=ids, attention_mask=mask, pixel_values=clip_pixels(Xt[:n]))
    ie, te = out.image_embeds, out.text_embeds
    ie, te = F.normalize(ie, dim=-1), F.normalize(te, dim=-1)
    sim = ie @ te.T
    rank = sim.argsort(1, descending=True).cpu().numpy()
    top1 = np.mean([caps[rank[i, 0]] == caps[i] for i in range(n)])
    top5 = np.mean([caps[i] in [caps[j] for j in rank[i, :5]] for i in range(n)])
    # free-text captions (the training phrasing, held-out images) against their own eval captions
    return {"retrieval_top1": round(float(top1), 3), "retrieval_top5": round(float(top5), 3), "retrieval_pool": n,
            "element_preference": element_preferences(model)}


# ------------------------------------------------------------------ sampling

@torch.no_grad()
def sample(unet, te, vae, prompts, seeds, kind):
    """kind 'base': DDIM 25 steps, guidance 5; kind 'lcm': LCMScheduler 4 steps, no guidance. Latents start as
    torch.randn([1,4,16,16], generator=torch.Generator('cpu').manual_seed(seed)) like diffusers' pipelines.
    DEV must be cpu for the noise to match jpgen's (CPU generators)."""
    from diffusers import DDIMScheduler, LCMScheduler
    if kind == "lcm":
        sch = LCMScheduler.from_config(lcm_scheduler_config())
        sch.set_timesteps(4)
    else:
        sch = DDIMScheduler.from_config(ddim_scheduler_config())
        sch.set_timesteps(25)
    ctx = te(*encode(prompts))
    unc = te(*encode([""] * len(prompts)))
    # One generator per image, as diffusers' pipelines with a generator list (and jpgen --count): the initial
    # latents, then LCM's per-step noise, come from the image's own generator.
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    z = torch.cat([torch.randn([1, 4, 16, 16], generator=g) for g in gens]).to(DEV)
    z = z * sch.init_noise_sigma
    for t in sch.timesteps:
        if kind == "lcm":
            eps = unet(z, t, encoder_hidden_states=ctx).sample
        else:
            e = unet(torch.cat([z, z]), t, encoder_hidden_states=torch.cat([unc, ctx])).sample
            eu, ec = e.chunk(2)
            eps = eu + GUIDANCE * (ec - eu)
        out = sch.step(eps, t, z, generator=gens) if kind == "lcm" else sch.step(eps, t, z)
        z = out.denoised if kind == "lcm" and t == sch.timesteps[-1] else out.prev_sample
    img = vae.decode(z / vae.config.scaling_factor).sample
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def ddim_scheduler_config():
    return dict(num_train_timesteps=1000, **BETAS,
                clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
                timestep_spacing="leading")


def lcm_scheduler_config():
    return dict(num_train_timesteps=1000, **BETAS,
                clip_sample=False, set_alpha_to_one=True, steps_offset=1, prediction_type="epsilon",
                original_inference_steps=50, timestep_scaling=10.0, timestep_spacing="leading")


# ------------------------------------------------------------------ export

def _f16_copy(src, dst):
    """Copies a saved model folder, rewriting every safetensors file in float16."""
    from safetensors.torch import load_file, save_file
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix == ".safetensors":
            sd = load_file(str(f))
            save_file({k: v.half().contiguous() for k, v in sd.items()}, str(dst / f.name), metadata={"format": "pt"})
        elif f.is_file():
            shutil.copy(f, dst / f.name)


TE_README = """# demo text encoder: BertSeriesModelWithTransformation

A small BERT (config.json: model_type bert, architectures [BertSeriesModelWithTransformation]) with a per-token
linear projection to the UNet's cross-attention width, as AltDiffusion's RobertaSeriesModelWithTransformation:

    projection_state = transformation(bert(input_ids, attention_mask).last_hidden_state)   # [B, T, project_dim]

Keys (model.safetensors, float16): `bert.embeddings.*`, `bert.encoder.layer.N.*` (no pooler) and
`transformation.weight` [project_dim, hidden_size], `transformation.bias` [project_dim].
config.json: `project_dim` (= UNet cross_attention_dim), `has_pre_transformation: false`, `use_attention_mask: true`.
The UNet attends to projection_state of the prompt padded to max_length 32 ([CLS] ... [SEP] [PAD]...) with the
attention mask; the unconditional context is the same for the empty prompt "".
"""


def write_pipeline(dst, unet_src, scheduler):
    from diffusers import DDIMScheduler, LCMScheduler
    import diffusers
    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    _f16_copy(unet_src, dst / "unet")
    _f16_copy(wdir("vae"), dst / "vae")
    _f16_copy(wdir("text_encoder"), dst / "text_encoder")
    (dst / "text_encoder" / "README.md").write_text(TE_README)
    te_cfg = json.loads((dst / "text_encoder" / "config.json").read_text())
    te_cfg["use_attention_mask"] = True  # the model was trained with the padding mask; diffusers passes it only then
    (dst / "text_encoder" / "config.json").write_text(json.dumps(te_cfg, indent=2, sort_keys=True) + "\n")
    shutil.copytree(wdir("tokenizer"), dst / "tokenizer")
    if scheduler == "lcm":
        LCMScheduler(**lcm_scheduler_config()).save_pretrained(dst / "scheduler")
        sname = "LCMScheduler"
    else:
        DDIMScheduler(**ddim_scheduler_config()).save_pretrained(dst / "scheduler")
        sname = "DDIMScheduler"
    mi = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
          "scheduler": ["diffusers", sname], "text_encoder": ["jpgen", "BertSeriesModelWithTransformation"],
          "tokenizer": ["transformers", "BertJapaneseTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
          "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None], "feature_extractor": [None, None],
          "requires_safety_checker": False}
    (dst / "model_index.json").write_text(json.dumps(mi, indent=2))


def stage_export():
    models = ROOT / "Models"
    models.mkdir(exist_ok=True)
    write_pipeline(models / "demo-base", wdir("base_unet"), "ddim")
    write_pipeline(models / "demo-lcm", wdir("lcm_unet"), "lcm")
    write_pipeline(models / "demo-ukiyoe", wdir("ukiyoe_unet"), "ddim")
    write_pipeline(models / "demo-watercolor", wdir("watercolor_unet"), "ddim")
    d = models / "demo-scorer"
    if d.exists():
        shutil.rmtree(d)
    _f16_copy(wdir("scorer"), d)
    export_classifier()
    total = sum(f.stat().st_size for f in models.rglob("*") if f.is_file())
    log("Models/ total", total / 1e6, "MB")
    return {"models_bytes": total}


# ------------------------------------------------------------------ report

def agreement(pred, sc_attrs):
    """Share of prompted attributes present (elements named in the eval caption, time, style) and of unprompted
    major elements absent, over all checks."""
    good = tot = 0
    for p, y in zip(pred, sc_attrs):
        for i, a in enumerate(world.ATTRIBUTES):
            if a.startswith("time:") or a.startswith("style:"):
                if y[i]:
                    tot += 1
                    good += p[i] == 1
            elif a in world.MAJOR or y[i]:
                if a == "snowcap" or a in ("sea", "beach", "clouds", "stars"):
                    continue  # minor elements are not always named
                tot += 1
                good += p[i] == y[i]
    return good / max(tot, 1)


def stage_report():
    net = load_classifier()
    vae = load_vae()
    models = ROOT / "Models"
    te = load_text_encoder(models / "demo-base" / "text_encoder")
    base = load_unet(models / "demo-base" / "unet")
    lcm = load_unet(models / "demo-lcm" / "unet")
    res = {}
    n = 24 if P.fast else P.eval_n
    for split in ("test", "held"):
        X, A, meta = load(split)
        caps = meta["eval_captions"][:n]
        # reference rows: the rendered scenes themselves (ceiling) and a predictor that sees nothing (floor)
        res[f"rendered images (ceiling) / {split}"] = {"agreement": round(float(agreement(classify(net, X[:n]), A[:n])), 3), "seconds_per_image": 0}
        none = np.zeros_like(A[:n])
        none[:, NE] = 1
        none[:, NE + NT] = 1
        res[f"nothing present (floor) / {split}"] = {"agreement": round(float(agreement(none, A[:n])), 3), "seconds_per_image": 0}
        for name, unet, kind in (("base (DDIM 25, cfg 5)", base, "base"), ("student (LCM 4)", lcm, "lcm")):
            t0 = time.time()
            imgs = np.concatenate([sample(unet, te, vae, caps[i:i + 16], range(i, min(i + 16, n)), kind) for i in range(0, n, 16)])
            res[f"{name} / {split}"] = {"agreement": round(float(agreement(classify(net, imgs), A[:n])), 3),
                                        "seconds_per_image": round((time.time() - t0) / n, 3)}
            log("eval", name, split, res[f"{name} / {split}"])
    prompts = ["江ノ島と富士山が見える風景", "夜の五重塔と月、浮世絵風", "夕焼けの富士山と海、水彩画風", "朝の鳥居と桜、写真風",
               "雪の五重塔、浮世絵風", "海に浮かぶ船と夕焼け", "Mount Fuji and the sea at night, ukiyo-e style", "月夜の松と砂浜、水彩画"]
    rows = []
    for unet, kind in ((lcm, "lcm"), (base, "base")):
        rows.append(sample(unet, te, vae, prompts, [1] * len(prompts), kind))
        rows.append(sample(unet, te, vae, prompts, [2] * len(prompts), kind))
    grid = Image.new("RGB", (len(prompts) * 130, len(rows) * 130), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            grid.paste(Image.fromarray(im).resize((128, 128), Image.NEAREST), (c * 130 + 1, r * 130 + 1))
    grid.save(models / "samples.png")
    world.preview(str(models / "world-preview.png"), 16, 5)
    times = json.loads(wdir("times.json").read_text())
    lines = ["# Demo-world models: report", "",
             f"Written by `Tools/demo-world/train.py{' --fast' if P.fast else ''}` (seed {P.seed}, device {DEV}, "
             f"{torch.get_num_threads()} thread(s)). {'SMOKE RUN (--fast): figures are not meaningful.' if P.fast else ''}", "",
             "## Attribute classifier (rendered images)", "",
             f"- test (unseen scenes): {times['classifier'].get('test_attribute_accuracy')}",
             f"- held-out combinations: {times['classifier'].get('heldout_attribute_accuracy')}", "",
             "Goal: mean >= 0.95 on rendered test images.", "",
             "## Generated images against their prompts (attribute agreement)", "",
             "Eval captions name every major element, the time and the style of a scene (e.g. `夜の五重塔と月、浮世絵風`);",
             "agreement = share of prompted attributes the classifier finds plus unprompted major elements it does not.",
             "`test`: unseen scenes/captions of training combinations; `held`: (subject, time, style) combinations never trained.", "",
             "| model / split | agreement | s / image |", "|---|---|---|"]
    lines += [f"| {k} | {v['agreement']} | {v['seconds_per_image']} |" for k, v in res.items()]
    lines += ["", "Goal: student >= 0.80 on held-out captions.", "",
              "## CLIP-style scorer (Models/demo-scorer)", "", f"{times.get('scorer')}", "",
              "## Stages (seconds, this machine)", "", "| stage | seconds | details |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']} | {json.dumps({a: b for a, b in v.items() if a != 'seconds'}, ensure_ascii=False)} |" for k, v in times.items()]
    lines += ["", "## Samples", "", "`samples.png`: columns are the prompts below; rows: student (LCM, 4 steps) seeds 1, 2; "
              "base (DDIM 25, guidance 5) seeds 1, 2.", ""] + [f"{i + 1}. {p}" for i, p in enumerate(prompts)]
    lines += ["", "![samples](samples.png)", "", "`world-preview.png`: rendered training scenes (128x128 renders).", ""]
    (models / "REPORT.md").write_text("\n".join(lines))
    return {"eval": res}


STAGES = ["data", "tokenizer", "classifier", "vae", "text", "base", "lcm", "styles", "scorer", "export", "report"]


def main():
    global P, DEV
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=STAGES, help="run only this stage (and mark it done)")
    ap.add_argument("--force", action="store_true", help="rerun --stage even if done")
    ap.add_argument("--fast", action="store_true", help="smoke run: tiny data, few steps (work dir work/fast)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads (default: all cores)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--cls-steps", type=int, default=1000)
    ap.add_argument("--vae-steps", type=int, default=1200)
    ap.add_argument("--text-steps", type=int, default=1500)
    ap.add_argument("--unet-steps", type=int, default=4000)
    ap.add_argument("--unet-lr", type=float, default=8e-4)
    ap.add_argument("--lcm-steps", type=int, default=800)
    ap.add_argument("--lcm-guidance", type=float, default=4.0)
    ap.add_argument("--style-steps", type=int, default=300)
    ap.add_argument("--scorer-steps", type=int, default=3000)
    ap.add_argument("--eval-n", type=int, default=96)
    P = ap.parse_args()
    P.work = P.work or str(HERE / "work" / ("fast" if P.fast else "full"))
    torch.set_num_threads(P.threads)
    DEV = P.device or ("cuda" if torch.cuda.is_available() else "cpu")
    Path(P.work).mkdir(parents=True, exist_ok=True)
    todo = [P.stage] if P.stage else STAGES
    for name in todo:
        if done(name) and not (P.force and P.stage == name):
            log("skip", name, "(done)")
            continue
        log("stage", name, "on", DEV)
        t0 = time.time()
        extra = globals()["stage_" + name]()
        mark(name, time.time() - t0, extra)
        log("done", name, round(time.time() - t0, 1), "s", extra)


if __name__ == "__main__":
    main()
