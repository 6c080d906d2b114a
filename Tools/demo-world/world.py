"""The demo world: procedural Japanese landscapes (scene graph -> 64x64 image -> captions).

Everything is deterministic from a seed. A scene graph is a dict:
  time: morning|day|sunset|night, style: photo|ukiyoe|watercolor, ground: sea|land,
  flags for every element in ELEMENTS (fuji, snowcap, enoshima, sea, beach, sun, moon, stars, clouds,
  sakura, pine, torii, pagoda, snow, boat), and the main subject (for the held-out combinations).
Scenes are drawn at 4x (256x256) with PIL and downsampled with a box filter (antialiasing), then styled:
  photo: smooth gradients, light grain; ukiyoe: flat palette (posterised) and dark outlines where the
  element map changes, paper tint; watercolor: blurred, bleeding colours, pale, paper texture.
"""

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TIMES = ["morning", "day", "sunset", "night"]
STYLES = ["photo", "ukiyoe", "watercolor"]
ELEMENTS = ["fuji", "snowcap", "enoshima", "sea", "beach", "sun", "moon", "stars", "clouds",
            "sakura", "pine", "torii", "pagoda", "snow", "boat"]
SUBJECTS = ["fuji", "enoshima", "pagoda", "torii", "boat", "sakura", "pine"]
# (subject, time, style) combinations that never appear in training (same as Tools/prompts/make_demo_suite.py).
HELD_OUT = {("pagoda", "night", "watercolor"), ("enoshima", "morning", "ukiyoe"), ("fuji", "night", "watercolor"),
            ("torii", "sunset", "photo"), ("boat", "night", "ukiyoe"), ("sakura", "night", "photo")}
ATTRIBUTES = ELEMENTS + ["time:" + t for t in TIMES] + ["style:" + s for s in STYLES]
MAJOR = ["fuji", "enoshima", "sakura", "pine", "torii", "pagoda", "boat", "moon", "sun", "snow"]

S = 256  # drawing resolution; output is S // 4


def is_held_out(scene):
    return any((sub, scene["time"], scene["style"]) in HELD_OUT for sub in SUBJECTS if scene[sub])


def sample_scene(rng: random.Random):
    """A random scene graph; one or two main subjects and some extras."""
    sc = {e: False for e in ELEMENTS}
    sc["time"] = rng.choice(TIMES)
    sc["style"] = rng.choice(STYLES)
    subs = [rng.choice(SUBJECTS)]
    if rng.random() < 0.45:
        other = rng.choice(SUBJECTS)
        if other not in subs:
            subs.append(other)
    for s in subs:
        sc[s] = True
    sc["subjects"] = subs
    sc["sea"] = sc["enoshima"] or sc["boat"] or rng.random() < 0.5
    sc["beach"] = sc["sea"] and rng.random() < 0.4
    if sc["fuji"]:
        sc["snowcap"] = rng.random() < 0.7
    t = sc["time"]
    if t == "night":
        sc["moon"] = rng.random() < 0.7
        sc["stars"] = rng.random() < 0.7
    else:
        sc["sun"] = rng.random() < (0.6 if t != "day" else 0.4)
        sc["clouds"] = rng.random() < 0.5
    sc["snow"] = rng.random() < 0.15 and not sc["sakura"]
    if sc["snow"] and sc["fuji"]:
        sc["snowcap"] = True
    return sc


# ---------------------------------------------------------------- drawing

SKY = {  # top, horizon colours
    "morning": ((120, 160, 215), (250, 200, 170)),
    "day": ((60, 125, 220), (175, 215, 245)),
    "sunset": ((70, 50, 120), (250, 130, 60)),
    "night": ((8, 12, 40), (30, 45, 95)),
}
SEA = {"morning": (70, 110, 160), "day": (30, 90, 170), "sunset": (90, 60, 100), "night": (10, 20, 55)}
LAND = {"morning": (110, 140, 80), "day": (80, 150, 70), "sunset": (90, 80, 60), "night": (20, 35, 30)}
SHADE = {"morning": 0.9, "day": 1.0, "sunset": 0.75, "night": 0.55}


def _grad(top, bottom, h, w):
    a = np.linspace(0, 1, h)[:, None, None]
    return (np.array(top)[None, None] * (1 - a) + np.array(bottom)[None, None] * a) * np.ones((1, w, 1))


def _tint(c, t, k=1.0):
    f = SHADE[t] ** k
    if t == "sunset":
        return tuple(int(min(255, v * f + add)) for v, add in zip(c, (30, 5, 0)))
    if t == "night":
        return tuple(int(v * f + add) for v, add in zip(c, (0, 3, 15)))
    return tuple(int(min(255, v * f)) for v in c)


class Canvas:
    def __init__(self):
        self.img = Image.new("RGB", (S, S))
        self.ids = Image.new("L", (S, S), 0)
        self.d = ImageDraw.Draw(self.img)
        self.di = ImageDraw.Draw(self.ids)
        self.next_id = 1

    def poly(self, pts, fill):
        self.d.polygon(pts, fill=fill)
        self.di.polygon(pts, fill=self._id())

    def ellipse(self, box, fill):
        self.d.ellipse(box, fill=fill)
        self.di.ellipse(box, fill=self._id())

    def rect(self, box, fill):
        self.d.rectangle(box, fill=fill)
        self.di.rectangle(box, fill=self._id())

    def _id(self):
        self.next_id = self.next_id % 254 + 1
        return self.next_id


def draw_scene(sc, rng: random.Random):
    t = sc["time"]
    cv = Canvas()
    hz = int(S * rng.uniform(0.58, 0.66))  # horizon
    arr = np.zeros((S, S, 3))
    arr[:hz] = _grad(*SKY[t], hz, S)
    if sc["sea"]:
        arr[hz:] = _grad(SEA[t], tuple(v * 0.7 for v in SEA[t]), S - hz, S)
    else:
        arr[hz:] = _grad(LAND[t], tuple(v * 0.75 for v in LAND[t]), S - hz, S)
    cv.img.paste(Image.fromarray(arr.astype(np.uint8)))
    cv.di.rectangle((0, hz, S, S), fill=200)
    d = cv.d
    if sc["stars"]:
        for _ in range(rng.randint(25, 45)):
            x, y = rng.uniform(0, S), rng.uniform(0, hz * 0.8)
            r = rng.choice([1.5, 2, 2.5])
            cv.ellipse((x - r, y - r, x + r, y + r), (255, 250, 210))
    if sc["sun"]:
        col = {"morning": (255, 200, 120), "day": (255, 250, 215), "sunset": (250, 90, 40)}[t]
        x = rng.uniform(S * 0.15, S * 0.85)
        y = hz - rng.uniform(10, 30) if t != "day" else rng.uniform(S * 0.1, S * 0.3)
        r = 22 if t != "day" else 18
        glow = Image.new("L", (S, S), 0)
        ImageDraw.Draw(glow).ellipse((x - r * 2.2, y - r * 2.2, x + r * 2.2, y + r * 2.2), fill=90)
        cv.img.paste(Image.new("RGB", (S, S), col), mask=glow.filter(ImageFilter.GaussianBlur(18)))
        cv.ellipse((x - r, y - r, x + r, y + r), col)
    if sc["moon"]:
        x, y, r = rng.uniform(S * 0.15, S * 0.85), rng.uniform(S * 0.1, S * 0.3), 16
        cv.ellipse((x - r, y - r, x + r, y + r), (250, 240, 190))
        if rng.random() < 0.5:  # crescent
            d.ellipse((x - r + 9, y - r - 4, x + r + 9, y + r - 4), fill=tuple(int(v) for v in arr[int(y), int(min(S - 1, x + 9))]))
    if sc["clouds"]:
        for _ in range(rng.randint(2, 4)):
            cx, cy = rng.uniform(0, S), rng.uniform(S * 0.08, hz * 0.6)
            col = _tint((250, 250, 250), t, 0.5) if t != "sunset" else (250, 175, 150)
            for _ in range(5):
                w, h = rng.uniform(18, 34), rng.uniform(9, 16)
                ox, oy = rng.uniform(-26, 26), rng.uniform(-6, 6)
                cv.ellipse((cx + ox - w, cy + oy - h, cx + ox + w, cy + oy + h), col)
    if sc["fuji"]:
        cx = rng.uniform(S * 0.3, S * 0.7) if not sc["enoshima"] else rng.uniform(S * 0.22, S * 0.42)
        peak = hz - rng.uniform(S * 0.32, S * 0.42)
        half = rng.uniform(S * 0.38, S * 0.5)
        top = 12

        def side(u):  # concave slope profile
            return peak + (hz - peak) * (u ** 1.6)
        left = [(cx - top - (half - top) * u, side(u)) for u in np.linspace(0, 1, 12)]
        right = [(cx + top + (half - top) * u, side(u)) for u in np.linspace(0, 1, 12)]
        body = _tint((85, 100, 150), t)
        cv.poly(left[::-1] + [(cx - top, peak), (cx + top, peak)] + right, body)
        if sc["snowcap"]:
            ylim = peak + (hz - peak) * 0.38
            pts = [(cx - top, peak), (cx + top, peak)]
            us = np.linspace(0, 1, 12)
            edge_r = [(cx + top + (half - top) * u * 0.5, side(u * 0.5)) for u in us]
            pts += edge_r
            zig = []
            for i, u in enumerate(np.linspace(1, -1, 9)):
                zig.append((cx + u * (half * 0.5 * 0.9), ylim + (10 if i % 2 else -4)))
            pts += zig
            edge_l = [(cx - top - (half - top) * u * 0.5, side(u * 0.5)) for u in us[::-1]]
            pts += edge_l
            cv.poly(pts, _tint((248, 248, 255), t, 0.6))
    if sc["sea"]:
        # waves
        for _ in range(22):
            x, y = rng.uniform(0, S), rng.uniform(hz + 4, S)
            w = rng.uniform(6, 16)
            d.line((x - w, y, x + w, y), fill=_tint((200, 220, 240), t, 0.7), width=2)
    if sc["enoshima"]:
        cx = rng.uniform(S * 0.58, S * 0.8)
        w, h = rng.uniform(42, 56), rng.uniform(24, 32)
        cv.ellipse((cx - w, hz - h, cx + w, hz + h * 0.35), _tint((55, 110, 60), t))
        tx, ty = cx + rng.uniform(-10, 10), hz - h + 4
        cv.rect((tx - 3, ty - 40, tx + 3, ty), _tint((225, 225, 225), t, 0.6))
        cv.poly([(tx - 9, ty - 40), (tx + 9, ty - 40), (tx + 5, ty - 48), (tx - 5, ty - 48)], _tint((200, 200, 205), t, 0.6))
        if t == "night":
            cv.ellipse((tx - 4, ty - 47, tx + 4, ty - 39), (255, 230, 120))
        d.rectangle((cx - w, hz + 1, cx + w, hz + 3), fill=_tint((40, 80, 60), t))
    if sc["beach"]:
        by = int(S * rng.uniform(0.82, 0.88))
        pts = [(0, S)] + [(x, by + 6 * math.sin(x / 23.0)) for x in range(0, S + 1, 8)] + [(S, S)]
        cv.poly(pts, _tint((230, 205, 150), t))
    if sc["boat"]:
        for _ in range(rng.randint(1, 2)):
            bx, by = rng.uniform(S * 0.15, S * 0.85), rng.uniform(hz + 12, hz + 40)
            cv.poly([(bx - 18, by), (bx + 18, by), (bx + 12, by + 8), (bx - 12, by + 8)], _tint((110, 70, 40), t))
            d.line((bx, by, bx, by - 30), fill=_tint((80, 60, 40), t), width=2)
            cv.poly([(bx + 1, by - 30), (bx + 1, by - 4), (bx + 17, by - 6)], _tint((240, 235, 220), t, 0.6))
    ground = S - 4
    if sc["pagoda"]:
        px = rng.uniform(S * 0.15, S * 0.35) if rng.random() < 0.5 else rng.uniform(S * 0.65, S * 0.85)
        base = ground - rng.uniform(8, 20)
        body, roof = _tint((150, 45, 35), t), _tint((50, 45, 50), t)
        y, w = base, 30
        for _ in range(5):
            cv.rect((px - w * 0.55, y - 18, px + w * 0.55, y), body)
            cv.poly([(px - w - 6, y - 16), (px + w + 6, y - 16), (px + w * 0.6, y - 26), (px - w * 0.6, y - 26)], roof)
            y -= 24
            w *= 0.84
        cv.rect((px - 1.5, y - 26, px + 1.5, y + 2), roof)
    if sc["torii"]:
        tx = rng.uniform(S * 0.3, S * 0.7)
        base = ground - rng.uniform(4, 16)
        w, h = rng.uniform(38, 50), rng.uniform(80, 100)
        red = _tint((215, 45, 30), t)
        cv.rect((tx - w * 0.7 - 5, base - h, tx - w * 0.7 + 5, base), red)
        cv.rect((tx + w * 0.7 - 5, base - h, tx + w * 0.7 + 5, base), red)
        cv.rect((tx - w * 0.85, base - h * 0.78, tx + w * 0.85, base - h * 0.72), red)
        cv.poly([(tx - w - 10, base - h - 10), (tx + w + 10, base - h - 10), (tx + w, base - h + 2), (tx - w, base - h + 2)], _tint((40, 30, 30), t))
    if sc["pine"]:
        for _ in range(rng.randint(1, 2)):
            px = rng.choice([rng.uniform(5, S * 0.3), rng.uniform(S * 0.7, S - 5)])
            base = ground
            trunk = _tint((90, 60, 40), t)
            d.line((px, base, px + rng.uniform(-12, 12), base - 90), fill=trunk, width=7)
            cv.rect((px - 3, base - 85, px + 3, base), trunk)
            green = _tint((30, 80, 45), t)
            for k in range(4):
                y = base - 40 - k * 20
                w = 34 - k * 5
                ox = rng.uniform(-10, 10)
                cv.ellipse((px + ox - w, y - 9, px + ox + w, y + 9), green)
    if sc["sakura"]:
        px = rng.choice([rng.uniform(10, S * 0.3), rng.uniform(S * 0.7, S - 10)])
        base = ground
        cv.poly([(px - 6, base), (px + 6, base), (px + 3, base - 70), (px - 3, base - 70)], _tint((80, 50, 45), t))
        pink = [_tint(c, t, 0.7) for c in ((250, 185, 205), (245, 160, 190), (255, 210, 225))]
        for _ in range(14):
            ox, oy = rng.uniform(-45, 45), rng.uniform(-40, 15)
            r = rng.uniform(12, 22)
            cv.ellipse((px + ox - r, base - 80 + oy - r, px + ox + r, base - 80 + oy + r), rng.choice(pink))
    if sc["snow"]:
        if not sc["sea"]:
            cv.poly([(0, S)] + [(x, ground - 10 + 4 * math.sin(x / 17.0)) for x in range(0, S + 1, 8)] + [(S, S)], _tint((240, 240, 250), t, 0.5))
        for _ in range(140):
            x, y = rng.uniform(0, S), rng.uniform(0, S)
            r = rng.uniform(1.5, 3)
            d.ellipse((x - r, y - r, x + r, y + r), fill=_tint((255, 255, 255), t, 0.3))
    return cv


UKIYOE_PALETTE = np.array([
    (34, 54, 98), (54, 92, 150), (110, 150, 190), (190, 210, 220), (238, 226, 196), (246, 240, 222),
    (212, 80, 52), (182, 50, 40), (236, 150, 110), (232, 180, 190), (70, 110, 70), (40, 70, 50),
    (120, 90, 60), (60, 50, 50), (200, 170, 110), (20, 26, 50), (90, 70, 110), (250, 200, 120),
], dtype=np.float64)


def stylize(cv: Canvas, style, rng: random.Random):
    img = np.asarray(cv.img).astype(np.float64)
    if style == "photo":
        img = np.asarray(Image.fromarray(img.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))).astype(np.float64)
        img += np.random.default_rng(rng.randint(0, 2 ** 31)).normal(0, 4, img.shape)
    elif style == "ukiyoe":
        flat = img.reshape(-1, 3)
        dist = ((flat[:, None, :] - UKIYOE_PALETTE[None]) ** 2).sum(-1)
        img = UKIYOE_PALETTE[dist.argmin(1)].reshape(img.shape)
        ids = np.asarray(cv.ids).astype(np.int32)
        edge = np.zeros(ids.shape, bool)
        edge[1:] |= ids[1:] != ids[:-1]
        edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
        e = Image.fromarray((edge * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5))
        m = np.asarray(e)[..., None] / 255.0
        img = img * (1 - m) + np.array((30, 25, 30)) * m
        img = img * 0.92 + np.array((240, 225, 190)) * 0.08  # paper
    else:  # watercolor
        r = random.Random(rng.randint(0, 2 ** 31))
        base = Image.fromarray(img.astype(np.uint8))
        # bleed: displace by smooth noise, blur, lighten, paper grain
        h = S
        nx = np.asarray(Image.fromarray((np.random.default_rng(r.randint(0, 2 ** 31)).random((16, 16)) * 255).astype(np.uint8)).resize((h, h), Image.BICUBIC)) / 255.0
        ny = np.asarray(Image.fromarray((np.random.default_rng(r.randint(0, 2 ** 31)).random((16, 16)) * 255).astype(np.uint8)).resize((h, h), Image.BICUBIC)) / 255.0
        yy, xx = np.mgrid[0:h, 0:h]
        sx = np.clip(xx + (nx - 0.5) * 14, 0, h - 1).astype(int)
        sy = np.clip(yy + (ny - 0.5) * 14, 0, h - 1).astype(int)
        img = np.asarray(base).astype(np.float64)[sy, sx]
        img = np.asarray(Image.fromarray(img.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2.5))).astype(np.float64)
        img = img * 0.8 + 255 * 0.2
        grain = np.random.default_rng(r.randint(0, 2 ** 31)).normal(0, 4, (h // 2, h // 2))
        grain = np.asarray(Image.fromarray(grain.astype(np.float32)).resize((h, h), Image.BILINEAR))
        img += grain[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def render(sc, seed, size=64):
    rng = random.Random(seed)
    cv = draw_scene(sc, rng)
    img = stylize(cv, sc["style"], rng)
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BOX))


def attributes(sc):
    v = np.zeros(len(ATTRIBUTES), np.float32)
    for i, a in enumerate(ATTRIBUTES):
        if a.startswith("time:"):
            v[i] = sc["time"] == a[5:]
        elif a.startswith("style:"):
            v[i] = sc["style"] == a[6:]
        else:
            v[i] = bool(sc[a])
    return v


# ---------------------------------------------------------------- captions

JA = {
    "fuji": ["富士山", "富士", "フジヤマ", "富士の山"],
    "fuji_snow": ["雪をかぶった富士山", "冠雪の富士山", "雪化粧の富士", "白い頂の富士山"],
    "enoshima": ["江ノ島", "江の島", "江ノ島の灯台", "展望灯台のある江ノ島"],
    "sea": ["海", "海原", "青い海"], "beach": ["砂浜", "浜辺", "海岸"],
    "sun": ["太陽", "日の光"], "moon": ["月", "満月", "お月さま"], "stars": ["星", "満天の星", "星々"],
    "clouds": ["雲", "白い雲"], "sakura": ["桜", "桜の木", "満開の桜"], "pine": ["松", "松の木", "松林"],
    "torii": ["鳥居", "赤い鳥居", "神社の鳥居"], "pagoda": ["五重塔", "古い五重塔", "塔"],
    "snow": ["雪", "雪景色", "降る雪"], "boat": ["船", "小舟", "舟", "帆船"],
}
JA_TIME = {"morning": ["朝", "朝焼け", "早朝", "明け方"], "day": ["昼", "青空", "晴れた日", "日中"],
           "sunset": ["夕焼け", "夕暮れ", "日没", "夕方"], "night": ["夜", "夜空", "月夜", "深夜"]}
JA_STYLE = {"photo": ["写真風", "写真", "リアルな写真"], "ukiyoe": ["浮世絵風", "浮世絵", "版画風"],
            "watercolor": ["水彩画風", "水彩画", "水彩"]}
EN = {"fuji": "Mount Fuji", "fuji_snow": "snow-capped Mount Fuji", "enoshima": "Enoshima island", "sea": "the sea",
      "beach": "a sandy beach", "sun": "the sun", "moon": "the moon", "stars": "stars", "clouds": "clouds",
      "sakura": "cherry blossoms", "pine": "pine trees", "torii": "a torii gate", "pagoda": "a five-storey pagoda",
      "snow": "snow", "boat": "a boat"}
EN_TIME = {"morning": "in the morning", "day": "in daylight", "sunset": "at sunset", "night": "at night"}
EN_STYLE = {"photo": "photo", "ukiyoe": "ukiyo-e style", "watercolor": "watercolor"}


def _names(sc):
    order = ["fuji", "enoshima", "pagoda", "torii", "sakura", "pine", "boat", "moon", "sun", "stars", "clouds", "snow", "sea", "beach"]
    subs = sc["subjects"]
    rest = [e for e in order if sc[e] and e not in subs]
    return subs + rest


def captions(sc, rng: random.Random, n=4):
    """n captions (mostly Japanese, about one in five English) naming the subjects, time and style,
    plus the other elements: major ones (MAJOR: moon, sun, snow, a second landmark...) four times in
    five, so that a prompt that leaves one out mostly means it is absent, minor ones (sea, beach,
    stars, clouds) half the time."""
    out = []
    for k in range(n):
        names = _names(sc)
        keep = names[:len(sc["subjects"])] + [e for e in names[len(sc["subjects"]):]
                                              if rng.random() < (0.8 if e in MAJOR else 0.5)]
        use_time = rng.random() < 0.85
        use_style = rng.random() < 0.85
        if rng.random() < 0.2:
            words = [EN["fuji_snow"] if (e == "fuji" and sc["snowcap"] and rng.random() < 0.6) else EN[e] for e in keep]
            s = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
            s = s[0].upper() + s[1:]
            if use_time:
                s += " " + EN_TIME[sc["time"]]
            if use_style:
                s += ", " + EN_STYLE[sc["style"]]
            out.append(s)
            continue
        words = [rng.choice(JA["fuji_snow"]) if (e == "fuji" and sc["snowcap"] and rng.random() < 0.6) else rng.choice(JA[e]) for e in keep]
        tm = rng.choice(JA_TIME[sc["time"]])
        st = rng.choice(JA_STYLE[sc["style"]])
        joined = "と".join(words) if len(words) <= 2 or rng.random() < 0.5 else "、".join(words)
        form = rng.randrange(5)
        if form == 0:
            s = (tm + "の" if use_time else "") + joined
        elif form == 1:
            s = joined + "が見える" + (tm + "の" if use_time else "") + "風景"
        elif form == 2:
            s = (tm + "の" if use_time else "") + joined + "のある景色"
        elif form == 3:
            s = "、".join(words + ([tm] if use_time else []))
        else:
            s = joined + ("、" + tm if use_time else "")
        if use_style:
            s += rng.choice(["、" + st, "、" + st, "を描いた" + st if st != "写真" else "の写真", "の" + st])
        out.append(s)
    return out


def dataset(n, seed, held_out=False):
    """n (scene, image seed) pairs: training scenes avoid HELD_OUT; held_out=True yields only held-out ones."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        sc = sample_scene(rng)
        if is_held_out(sc) == held_out:
            out.append((sc, rng.randint(0, 2 ** 31 - 1)))
    return out


def preview(path, n=24, seed=0):
    items = dataset(n, seed)
    cols = 8
    grid = Image.new("RGB", (cols * 130, ((n + cols - 1) // cols) * 130), (255, 255, 255))
    for i, (sc, s) in enumerate(items):
        im = Image.fromarray(render(sc, s, 128))
        grid.paste(im, ((i % cols) * 130 + 1, (i // cols) * 130 + 1))
    grid.save(path)
    return items


if __name__ == "__main__":
    import sys
    items = preview(sys.argv[1] if len(sys.argv) > 1 else "preview.png")
    for sc, s in items[:8]:
        print(sc["subjects"], sc["time"], sc["style"], captions(sc, random.Random(s)))
