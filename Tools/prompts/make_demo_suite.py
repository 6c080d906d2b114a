"""Writes Examples/prompts/demo-world.yaml: the prompt suite of the demo world (issue 7's elements).

Prompts combine a main subject (富士山, 江ノ島, 五重塔, 鳥居, 海と船, 桜, 松), a time of day (朝, 昼,
夕焼け, 夜) and a style (写真風, 浮世絵風, 水彩画風), in varied Japanese phrasing with an English version.
Combinations listed in HELD_OUT are never used for training captions by the demo world and form the
`held-out` split (composition the models never saw); a share of the rest is held out too, as unseen
phrasings. Deterministic: run it again and the file is the same.
"""
import os
import random

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Examples", "prompts", "demo-world.yaml")

SUBJECTS = [
    ("fuji", "富士山", "Mount Fuji", ["雪をかぶった富士山", "富士山", "富士"]),
    ("enoshima", "江ノ島", "Enoshima island", ["江ノ島", "江の島", "江ノ島と灯台"]),
    ("pagoda", "五重塔", "a five-storey pagoda", ["五重塔", "古い五重塔"]),
    ("torii", "鳥居", "a torii gate", ["海辺の鳥居", "赤い鳥居"]),
    ("boat", "船", "boats on the sea", ["海に浮かぶ船", "海と小舟"]),
    ("sakura", "桜", "cherry blossoms", ["満開の桜", "桜の木"]),
    ("pine", "松", "pine trees", ["海岸の松", "松の木"]),
]
TIMES = [
    ("morning", "朝", "in the morning", ["朝の", "朝焼けの"]),
    ("day", "昼", "in daylight", ["青空の", "晴れた日の"]),
    ("sunset", "夕焼け", "at sunset", ["夕焼けの", "夕暮れの", "日没の"]),
    ("night", "夜", "at night", ["夜の", "月夜の", "星空の"]),
]
STYLES = [
    ("photo", "写真風", "photo", ["、写真風", "の写真"]),
    ("ukiyoe", "浮世絵風", "ukiyo-e style", ["、浮世絵風", "を描いた浮世絵"]),
    ("watercolor", "水彩画風", "watercolor", ["、水彩画風", "の水彩画"]),
]
EXTRAS = [("", "", ""), ("snow", "、雪", ", with snow"), ("clouds", "と雲", " and clouds"), ("moon", "と月", " and the moon")]
# Combinations the demo world keeps out of training entirely (composition tests).
HELD_OUT = {("pagoda", "night", "watercolor"), ("enoshima", "morning", "ukiyoe"), ("fuji", "night", "watercolor"),
            ("torii", "sunset", "photo"), ("boat", "night", "ukiyoe"), ("sakura", "night", "photo")}


def main():
    rng = random.Random(7)
    lines = ["# The demo world's prompt suite (written by Tools/prompts/make_demo_suite.py; do not edit by hand).",
             "# split: search prompts drive evomerge evolve; held-out prompts judge its result. Combinations",
             "# marked held-out never appear in the demo world's training captions.",
             "name: demo-world", "seeds: [1, 2]", "prompts:",
             "  - {id: enoshima-fuji, ja: 江ノ島と富士山が見える風景, en: A landscape with Enoshima and Mount Fuji, tags: [fuji, enoshima, day, photo], split: search}",
             "  - {id: pagoda-moon-night-ukiyoe, ja: 夜の五重塔と月、浮世絵風, en: A five-storey pagoda and the moon at night, ukiyo-e style, tags: [pagoda, night, ukiyoe, moon], split: search}"]
    count = 2
    for sid, _, sen, sja in SUBJECTS:
        for tid, _, ten, tja in TIMES:
            for yid, _, yen, yja in STYLES:
                combo = (sid, tid, yid)
                held = combo in HELD_OUT
                extra = rng.choice(EXTRAS) if rng.random() < 0.4 else EXTRAS[0]
                ja = rng.choice(tja) + rng.choice(sja) + extra[1] + rng.choice(yja)
                en = f"{sen[0].upper() + sen[1:]}{extra[2]} {ten}, {yen}"
                split = "held-out" if held or rng.random() < 0.2 else "search"
                tags = [sid, tid, yid] + ([extra[0]] if extra[0] else [])
                ident = f"{sid}-{tid}-{yid}"
                lines.append(f"  - {{id: {ident}, ja: {ja}, en: '{en}', tags: [{', '.join(tags)}], split: {split}}}")
                count += 1
    # Two subjects in one scene: composition beyond single elements.
    pairs = [(a, b) for i, a in enumerate(SUBJECTS) for b in SUBJECTS[i + 1:]]
    rng.shuffle(pairs)
    for (aid, aja, aen, _), (bid, bja, ben, _) in pairs[:18]:
        tid, _, ten, tja = rng.choice(TIMES)
        yid, _, yen, yja = rng.choice(STYLES)
        ja = rng.choice(tja) + aja + "と" + bja + rng.choice(["が見える風景", "のある景色"]) + rng.choice(yja)
        en = f"{aen[0].upper() + aen[1:]} and {ben} {ten}, {yen}"
        split = "held-out" if rng.random() < 0.35 else "search"
        lines.append(f"  - {{id: {aid}-{bid}-{tid}-{yid}, ja: {ja}, en: '{en}', tags: [{aid}, {bid}, {tid}, {yid}], split: {split}}}")
        count += 1
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(count, "prompts ->", OUT)


if __name__ == "__main__":
    main()
