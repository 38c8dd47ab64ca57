"""A deterministic miniature of the V1.2 SFT mix, in the same meta + JSONL + image layout.

Four task families, each with balanced answers so chance is well defined:
- shapes    (ShareGPT4V / LLaVA style): coloured shapes on a 2x2 grid; a caption
            and questions on count, shape and colour by position; multi-turn.
- charts    (DVQA / ChartQA style): three bars A/B/C with values 1-5 and a title.
- documents (SynthDoG style): one to three lines of large rendered words; reading questions.
- choice    (AI2D / ScienceQA style): a shape and lettered options; the answer is the letter.

Every sample is drawn from `random.Random(f"{seed}/{task}/{split}/{i}")` (string
seeds hash with SHA-512, so the output is byte-identical across runs and
machines with the same Pillow). Answers are one word, number or letter, and the
test questions use exactly the phrasings the training data uses.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TASKS = ("shapes", "charts", "documents", "choice")
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220), "yellow": (235, 200, 0)}
SHAPES = ("circle", "square", "triangle")
CELLS = ("top left", "top right", "bottom left", "bottom right")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
TITLES = ("Sales", "Rain", "Votes", "Cost")
WORDS = ("cat", "sun", "map", "box", "red", "car", "tree", "fish")
LETTERS = "ABCD"
CHOICE_SUFFIX = "Answer with the option's letter from the given choices directly."
SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."  # InternVL's VQA prompt suffix
# Question kinds per task (the names `generate(question_kinds=...)` takes), in the order the builders list them.
QUESTION_KINDS = {"shapes": ("count", "shape", "colour"), "charts": ("title", "value", "highest"),
                  "documents": ("first_word", "last_word", "lines"), "choice": ("shape", "colour")}


@dataclass
class Question:
    text: str  # the user text, without <image>
    answer: str
    chance: float
    choices: dict[str, str] | None = None
    kind: str = ""  # one of QUESTION_KINDS[task]


def _font(px: int):
    return ImageFont.load_default(size=max(8, px))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], colour) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def _shapes(rng: random.Random, size: int):
    count = rng.randint(1, 4)
    cells = rng.sample(range(4), count)
    objs = {c: (rng.choice(SHAPES), rng.choice(list(COLOURS))) for c in cells}
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    half, pad = size / 2, size * 0.08
    for c, (shape, colour) in objs.items():
        x, y = (c % 2) * half, (c // 2) * half
        _draw_shape(draw, shape, (x + pad, y + pad, x + half - pad, y + half - pad), COLOURS[colour])
    parts = [f"a {colour} {shape} in the {CELLS[c]}" for c, (shape, colour) in sorted(objs.items())]
    caption = f"There {'is' if count == 1 else 'are'} {NUMBER_WORDS[count]} shape{'s' * (count > 1)}: " + ", ".join(parts) + "."
    cell = rng.choice(sorted(objs))
    questions = [
        Question("How many shapes are there?", str(count), 1 / 4, kind="count"),
        Question(f"What shape is in the {CELLS[cell]}?", objs[cell][0], 1 / len(SHAPES), kind="shape"),
        Question(f"What colour is the shape in the {CELLS[cell]}?", objs[cell][1], 1 / len(COLOURS), kind="colour"),
    ]
    return img, caption, questions


def _charts(rng: random.Random, size: int):
    values = rng.sample(range(1, 6), 3)  # distinct, so "highest" is unique
    title = rng.choice(TITLES)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    top, bottom = size * 0.28, size * 0.86
    draw.text((size / 2, size * 0.02), title, fill="black", font=_font(int(size * 0.2)), anchor="mt")
    width = size / 4
    for k, v in enumerate(values):
        x = size * 0.06 + k * (width + size * 0.06)
        y = bottom - (bottom - top) * v / 5
        draw.rectangle((x, y, x + width, bottom), fill=list(COLOURS.values())[k])
        draw.text((x + width / 2, bottom + 1), LETTERS[k], fill="black", font=_font(int(size * 0.13)), anchor="mt")
    bar = rng.randrange(3)
    questions = [
        Question("What is the title of the chart?", title, 1 / len(TITLES), kind="title"),
        Question(f"What is the value of bar {LETTERS[bar]}?", str(values[bar]), 1 / 5, kind="value"),
        Question("Which bar is the highest?", LETTERS[values.index(max(values))], 1 / 3, kind="highest"),
    ]
    caption = f"A bar chart titled {title}: " + ", ".join(f"bar {LETTERS[k]} is {v}" for k, v in enumerate(values)) + "."
    return img, caption, questions


def _documents(rng: random.Random, size: int):
    n_lines = rng.randint(1, 3)
    words = rng.sample(WORDS, n_lines)
    img = Image.new("RGB", (size, size), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    font = _font(int(size * 0.26))
    for k, w in enumerate(words):
        draw.text((size * 0.08, size * (0.05 + 0.32 * k)), w, fill="black", font=font)
    questions = [
        Question("What is the first word?", words[0], 1 / len(WORDS), kind="first_word"),
        Question("What is the last word?", words[-1], 1 / len(WORDS), kind="last_word"),
        Question("How many lines of text are there?", str(n_lines), 1 / 3, kind="lines"),
    ]
    caption = "A document with the text: " + " / ".join(words) + "."
    return img, caption, questions


def _choice(rng: random.Random, size: int, fixed_order: bool = False, kinds: tuple[str, ...] = ("shape", "colour")):
    shape, colour = rng.choice(SHAPES + ("star",)), rng.choice(list(COLOURS))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    pad = size * 0.15
    if shape == "star":  # a plus-like star keeps its outline readable at 56 px
        c, w = size / 2, size * 0.12
        draw.polygon([(c - w, pad), (c + w, pad), (c + w, c - w), (size - pad, c - w), (size - pad, c + w),
                      (c + w, c + w), (c + w, size - pad), (c - w, size - pad), (c - w, c + w), (pad, c + w),
                      (pad, c - w), (c - w, c - w)], fill=COLOURS[colour])
    else:
        _draw_shape(draw, shape, (pad, pad, size - pad, size - pad), COLOURS[colour])
    kind = rng.choice(("shape", "colour"))
    if kind not in kinds:  # only one kind asked for: always that one (the draw above keeps the rng stream)
        kind = kinds[0]
    options = list(SHAPES + ("star",)) if kind == "shape" else list(COLOURS)
    shuffled = list(options)
    rng.shuffle(shuffled)  # drawn either way, so fixed_order changes nothing else about the sample
    if not fixed_order:  # fixed order: the letter is a function of the attribute (easier to learn)
        options = shuffled
    choices = {LETTERS[k]: o for k, o in enumerate(options)}
    answer = LETTERS[options.index(shape if kind == "shape" else colour)]
    stem = "Which shape is shown?" if kind == "shape" else "What colour is the shape?"
    text = stem + "\n" + "\n".join(f"{k}. {v}" for k, v in choices.items()) + "\n" + CHOICE_SUFFIX
    return img, None, [Question(text, answer, 1 / len(choices), choices, kind=kind)]


_BUILDERS = {"shapes": _shapes, "charts": _charts, "documents": _documents, "choice": _choice}


def _train_record(sample_id: str, image: str, caption: str | None, questions: list[Question], rng: random.Random,
                  single_question: bool = False):
    turns = []
    if single_question:  # one question per image, no caption: short samples, more images per step
        q = rng.choice(questions)
        return {"id": sample_id, "image": image, "conversations": [
            {"from": "human", "value": "<image>\n" + q.text}, {"from": "gpt", "value": q.answer}]}
    if caption is not None and rng.random() < 0.5:
        turns.append(("Describe the image.", caption))
    qs = list(questions)
    rng.shuffle(qs)
    turns += [(q.text, q.answer) for q in qs[: rng.randint(1, len(qs))]]
    convs = []
    for k, (q, a) in enumerate(turns):
        convs.append({"from": "human", "value": ("<image>\n" + q) if k == 0 else q})
        convs.append({"from": "gpt", "value": a})
    return {"id": sample_id, "image": image, "conversations": convs}


def generate(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, image_size: int = 112,
             tasks: tuple[str, ...] | list[str] | None = None, image_format: str = "png",
             question_kinds: dict[str, list[str]] | None = None, single_question: bool = False,
             short_answer_suffix: bool = False, fixed_choice_order: bool = False) -> dict:
    """Write the synthetic data set; `n_train`/`n_test` are per task. Returns counts per task and split.

    The knobs make the data easier to learn; their defaults give the full mix:
    question_kinds: {task: [kind, ...]} asks only those kinds (QUESTION_KINDS) for those tasks, train and test;
    single_question: one question per training image (no caption, no multi-turn);
    short_answer_suffix: free-answer questions end with InternVL's SHORT_ANSWER_SUFFIX, train and test;
    fixed_choice_order: lettered options always in the same order, so a letter always means the same option.
    """
    tasks = tuple(tasks or TASKS)
    kinds = {t: tuple(QUESTION_KINDS[t]) for t in TASKS}
    for task, wanted in (question_kinds or {}).items():
        bad = [k for k in wanted if k not in QUESTION_KINDS.get(task, ())]
        if task not in QUESTION_KINDS or bad or not wanted:
            raise ValueError(f"question_kinds[{task!r}] = {wanted!r}: unknown task or kinds {bad}; known: {QUESTION_KINDS}")
        kinds[task] = tuple(k for k in QUESTION_KINDS[task] if k in wanted)
    unknown = [t for t in tasks if t not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown synthetic tasks {unknown}; known: {list(TASKS)}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta, counts, test_records = {}, {}, []
    for task in tasks:
        (out / "images" / task).mkdir(parents=True, exist_ok=True)
        (out / task).mkdir(parents=True, exist_ok=True)
        lines = []
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                rng = random.Random(f"{seed}/{task}/{split}/{i}")
                if task == "choice":
                    img, caption, questions = _choice(rng, image_size, fixed_order=fixed_choice_order, kinds=kinds[task])
                else:
                    img, caption, questions = _BUILDERS[task](rng, image_size)
                questions = [q for q in questions if q.kind in kinds[task]]
                if short_answer_suffix:
                    questions = [q if q.choices else Question(q.text + "\n" + SHORT_ANSWER_SUFFIX, q.answer, q.chance,
                                                              q.choices, q.kind) for q in questions]
                rel = f"images/{task}/{split}_{i:06d}.{image_format}"
                if image_format == "png":
                    img.save(out / rel, format="PNG", optimize=False)
                else:
                    img.save(out / rel, format="JPEG", quality=95)
                sample_id = f"{task}-{split}-{i}"
                if split == "train":
                    lines.append(json.dumps(_train_record(sample_id, rel, caption, questions, rng, single_question)))
                else:
                    q = questions[i % len(questions)]  # round-robin over question types: balanced
                    rec = {"id": sample_id, "image": rel, "question": q.text, "answer": q.answer, "task": task,
                           "chance": round(q.chance, 6)}
                    if q.choices:
                        rec["choices"] = q.choices
                    test_records.append(json.dumps(rec))
        (out / task / "train.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        meta[task] = {"root": ".", "annotation": f"{task}/train.jsonl", "data_augment": False,
                      "repeat_time": 1, "length": n_train}
        counts[task] = {"train": n_train, "test": n_test}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "test.jsonl").write_text("".join(r + "\n" for r in test_records), encoding="utf-8")
    return counts
