"""Build the demo LLM's tokenizer (data/demo/tokenizer/) from the demo corpus text.

A BPE over the corpus' transcripts, questions and answers, plus the template generator's implicit QA
phrasings (the demo's implicit source), so frequent words are single tokens. No tool beyond paralm.

    python data/demo/build_tokenizer.py [--shards data/demo/shards/general] [--out data/demo/tokenizer]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import paralm.creation.generate.template as qa_template
from paralm.creation.generate.inputs import input_from_meta
from paralm.data.index import ShardIndex
from paralm.data.shards import iter_samples
from paralm.model.builders import word_tokenizer

HERE = Path(__file__).resolve().parent


def corpus_texts(shards: Path) -> list[str]:
    texts: list[str] = []
    for _row, meta, _audio in iter_samples(ShardIndex.load(shards)):
        texts.append(meta["transcript"])
        for qa in meta.get("qa", []):
            texts += [qa["question"], qa["answer"]]
        for seed in range(3):  # the template phrasings the implicit and control sources will use
            for pair in qa_template.template_pairs(input_from_meta(meta, "gold"), seed, 3, 6):
                texts += [pair["question"], pair["answer"]]
    return texts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default=str(HERE / "shards" / "general"))
    p.add_argument("--out", default=str(HERE / "tokenizer"))
    p.add_argument("--vocab-size", type=int, default=4096)
    args = p.parse_args(argv)
    tok = word_tokenizer(corpus_texts(Path(args.shards)), vocab_size=args.vocab_size)
    tok.save_pretrained(args.out)
    print(f"tokenizer with {len(tok)} ids -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
