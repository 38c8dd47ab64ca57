"""Derive reference prompts by running InternVL v1.2.3's own eval dataset classes on our miniature files.

    /work/side-venv/bin/python tests/data/eval/make_reference_prompts.py /tmp/ivl123/internvl_chat

The argument is an `internvl_chat/` folder of an OpenGVLab/InternVL checkout at tag v1.2.3
(c6b37dc), kept outside this repository, e.g.
    git --git-dir=<mirror> archive c6b37dc internvl_chat | tar -x -C /tmp/ivl123
Run it in an environment with the original's versions (torch, transformers 4.37, pandas 2.2).
Nothing of InternVL's code is copied here: this script imports the original modules, replaces
only what needs a GPU, a checkpoint or the network (the image transform, the HF `datasets`
download) with small stand-ins, builds each original Dataset on the InternVL-layout files
under tests/data/eval/ and records the `question` string each one hands to `model.chat`.
Output: tests/data/eval/reference_prompts.json, {prompt group: sorted prompts}.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import pyarrow.parquet as pq
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def _stub_modules() -> None:
    """Stand-ins for what the original scripts import but the prompt code does not use."""
    transform = types.ModuleType("internvl.train.dataset")
    transform.build_transform = lambda **kw: (lambda image: torch.zeros(3, 2, 2))
    sys.modules.setdefault("internvl", types.ModuleType("internvl"))
    sys.modules.setdefault("internvl.train", types.ModuleType("internvl.train"))
    sys.modules["internvl.train.dataset"] = transform
    for name in ("vqa_eval", "vqa"):  # evaluate_vqa.py imports its scorers at module level
        mod = types.ModuleType(name)
        mod.VQA = mod.VQAEval = object
        sys.modules[name] = mod
    # MMMU / MathVista: the original calls datasets.load_dataset on the HF hub; serve our parquet instead
    import importlib.machinery

    import transformers  # noqa: F401  (imported first: it probes for a real `datasets` package)

    datasets = types.ModuleType("datasets")
    datasets.__spec__ = importlib.machinery.ModuleSpec("datasets", None)

    def rows_of(paths):
        out = []
        for path in paths:
            for r in pq.read_table(path).to_pylist():
                for k, v in r.items():
                    if isinstance(v, dict) and "bytes" in v and v["bytes"]:
                        r[k] = Image.open(io.BytesIO(v["bytes"]))
                out.append(r)
        return out

    def load_dataset(root, subject=None, split=None, cache_dir=None):
        base = HERE / DATASET_ROOTS[root]
        if subject is not None:  # MMMU/MMMU, one config per subject
            return Rows(rows_of(sorted(base.glob(f"{subject}/{split}-*.parquet"))))
        return {p.name.split("-")[0]: Rows(rows_of([p])) for p in sorted(base.glob("data/*.parquet"))}

    datasets.load_dataset = load_dataset
    datasets.concatenate_datasets = lambda parts: Rows([r for part in parts for r in part])
    sys.modules["datasets"] = datasets


class Rows(list):
    """Like a datasets.Dataset: indexing returns a fresh dict (the original scripts mutate items)."""

    def __getitem__(self, i):
        return dict(super().__getitem__(i))


DATASET_ROOTS = {"MMMU/MMMU": "mmmu-hf/mmmu", "AI4Math/MathVista": "mathvista-hf/mathvista"}


def _questions(dataset) -> list[str]:
    """The question each item hands to model.chat (MathVista passes data_item['query'])."""
    items = [dataset[i] for i in range(len(dataset))]
    return sorted(it["question"] if "question" in it else it["data_item"]["query"] for it in items)


def main(ivl: Path) -> None:
    _stub_modules()
    sys.path[:0] = [str(ivl), str(ivl / "eval/vqa"), str(ivl / "eval/mmmu")]
    refs: dict[str, list[str]] = {}
    suffix = "Answer with the option's letter from the given choices directly."
    work = Path(tempfile.mkdtemp())
    cwd = os.getcwd()

    def in_layout(layout: str):
        """InternVL's scripts run in internvl_chat/ and open data/<bench>/...: point data/ at the layout."""
        os.chdir(cwd)
        d = work / layout
        d.mkdir(exist_ok=True)
        if not (d / "data").exists():
            (d / "data").symlink_to(HERE / layout)
        os.chdir(d)

    def script(rel: str):
        name = rel.replace("/", "_")[:-3]
        spec = __import__("importlib.util").util.spec_from_file_location(name, ivl / "eval" / rel)
        mod = __import__("importlib.util").util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    mmb = script("mmbench/evaluate_mmbench.py")
    in_layout("mmbench-internvl")
    refs["mmbench"] = _questions(mmb.MMBenchDataset("data/mmbench/mmbench_dev_20230712.tsv",
                                                    {"en": suffix, "cn": "请直接回答选项字母。"}, "en"))
    refs["mmbench:mmbench-dev-cn"] = _questions(mmb.MMBenchDataset("data/mmbench/mmbench_dev_cn_20231003.tsv",
                                                                   {"en": suffix, "cn": "请直接回答选项字母。"}, "cn"))
    sqa = script("scienceqa/evaluate_scienceqa.py")
    in_layout("scienceqa-internvl")
    refs["scienceqa"] = _questions(sqa.ScienceQADataset("data/scienceqa/scienceqa_test_img.jsonl", suffix))
    mmvp = script("mmvp/evaluate_mmvp.py")
    in_layout("mmvp-official")
    refs["mmvp"] = _questions(mmvp.MMVPDataset("data/mmvp", suffix))
    pope = script("pope/evaluate_pope.py")
    in_layout("pope-internvl")
    refs["pope"] = _questions(pope.VQADataset("data/pope/val2014", "data/pope/llava_pope_test.jsonl", ""))
    vqa = script("vqa/evaluate_vqa.py")
    base = "Answer the question using a single word or phrase."
    for group, layout, test, prompt in [
        ("textvqa-ocr", "textvqa-internvl", "data/textvqa/textvqa_val_llava.jsonl", base),
        ("gqa", "gqa-internvl", "data/gqa/llava_gqa_testdev_balanced_qwen_format.jsonl", base),
        ("ai2d", "ai2d-internvl", "data/ai2diagram/test.jsonl", ""),  # ai2d_prompt = '' at v1.2.3
    ]:
        in_layout(layout)
        refs[group] = _questions(vqa.VQADataset(train=None, test=test, prompt=prompt, few_shot=0))
    mmmu = script("mmmu/evaluate_mmmu.py")
    in_layout("mmmu-hf")
    refs["mmmu"] = _questions(mmmu.MMMUDataset("MMMU/MMMU", "validation",
                                               {"multiple-choice": suffix, "open": base}))
    mv = script("mathvista/evaluate_mathvista.py")
    in_layout("mathvista-hf")
    refs["mathvista"] = _questions(mv.MathVistaDataset("AI4Math/MathVista", "testmini"))
    os.chdir(cwd)
    out = HERE / "reference_prompts.json"
    out.write_text(json.dumps(refs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in refs.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
