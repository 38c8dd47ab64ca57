"""TextVQA val: VQA accuracy over 10 human answers.

Files (under --data-root/textvqa/): the original TextVQA_0.5.1_val.json + train_images/
(<image_id>.jpg), the lmms-lab/textvqa parquet (data/validation-*.parquet), or
VLMEvalKit's TextVQA_VAL.tsv. V1.2's 69.7 used LLaVA's variant with OCR tokens in the
question (textvqa_val_llava.jsonl); a jsonl in that layout (question_id, image,
question, answer list) is read when present as textvqa_val_llava.jsonl.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    SHORT_ANSWER_SUFFIX, Benchmark, BenchmarkDataError, BenchmarkResult, Sample, ScoreContext, check_lengths,
    file_image, hf_image, parquet_shards, read_json, read_jsonl, read_parquet, read_tsv, register, require, tsv_image,
)
from .scoring import parse_answer_list, vqa_accuracy_result


def load(data_root: Path) -> list[Sample]:
    root = data_root / "textvqa"
    if (root / "textvqa_val_llava.jsonl").exists():
        return [Sample(id=str(require(r, "question_id")), image=file_image(root, require(r, "image"), r["_origin"]),
                       question=str(require(r, "question")), answer=parse_answer_list(require(r, "answer"), r["_origin"]))
                for r in read_jsonl(root / "textvqa_val_llava.jsonl")]
    if (root / "TextVQA_0.5.1_val.json").exists():
        data = require(read_json(root / "TextVQA_0.5.1_val.json"), "data")
        out = []
        for i, r in enumerate(data):
            r["_origin"] = f"TextVQA_0.5.1_val.json data[{i}]"
            out.append(Sample(id=str(require(r, "question_id")),
                              image=file_image(root, f"train_images/{require(r, 'image_id')}.jpg", r["_origin"]),
                              question=str(require(r, "question")), answer=parse_answer_list(require(r, "answers"), r["_origin"])))
        return out
    shards = parquet_shards(root, "data/validation-*.parquet")
    if shards:
        return [Sample(id=str(require(r, "question_id")), image=hf_image(r), question=str(require(r, "question")),
                       answer=parse_answer_list(require(r, "answers"), r["_origin"])) for r in read_parquet(shards)]
    if (root / "TextVQA_VAL.tsv").exists():
        rows = read_tsv(root / "TextVQA_VAL.tsv")
        by_index = {str(r["index"]): r for r in rows}
        return [Sample(id=str(r["index"]), image=tsv_image(r, by_index), question=str(require(r, "question")),
                       answer=parse_answer_list(require(r, "answer"), r["_origin"])) for r in rows]
    raise BenchmarkDataError(f"TextVQA: found none of {root}/textvqa_val_llava.jsonl, TextVQA_0.5.1_val.json, "
                             "data/validation-*.parquet, TextVQA_VAL.tsv")


def short_answer_prompt(s: Sample) -> str:
    return s.question + " " + SHORT_ANSWER_SUFFIX


def score(samples: list[Sample], preds: list[str], ctx: ScoreContext) -> BenchmarkResult:
    check_lengths(samples, preds, "textvqa-val")
    return vqa_accuracy_result("textvqa-val", samples, preds, ctx)


register(Benchmark(
    name="textvqa-val", title="TextVQA", split="val", metric="VQA accuracy", max_new_tokens=10, load=load,
    prompt=short_answer_prompt, score=score, data_dir="textvqa",
    flavours={"internvl": "InternVL V1.2 VQAEval copy (internvl_v12_lavis)", "vlmevalkit": "VLMEvalKit process_answer"},
))
