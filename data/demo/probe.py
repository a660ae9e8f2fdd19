"""Linear emotion probe on frozen encoder features: can the demo's emotions be heard by the encoder?

    python data/demo/probe.py [--shards data/demo/shards/general] [--json probe.json]

Reads the committed shards through the project's reader, computes the project's log-mel features on each
clip's real length, runs the converted Whisper tiny.en encoder (paralm "whisper" encoder, no 30-s padding),
mean+std pools the frames of a layer, and fits a multinomial logistic regression (torch, L2, LBFGS) on the
train split (10 voices). Accuracy is reported on the validation split (2 held-out voices x 6 held-out
sentences) and the test split (4 held-out voices x 14 held-out sentences), overall and on emotionally
neutral sentences. Feature sets: the last layer, an early
layer (output of the first block), and a control: the same architecture with random weights (last layer).
Nothing is tuned on the test split: the regularisation strength is fixed in advance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from paralm.audio import log_mel  # noqa: E402
from paralm.data.index import ShardIndex  # noqa: E402
from paralm.data.reader import SampleReader  # noqa: E402
from paralm.model.config import EncoderConfig  # noqa: E402
from paralm.model.ct2_whisper import ensure_whisper_tiny_en  # noqa: E402
from paralm.model.encoder import build_encoder  # noqa: E402

EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "surprised")
WEIGHT_DECAY = 1e-2  # fixed before looking at any test number
EARLY_LAYER = 0  # index of the transformer block whose output is the "early layer"


def load_clips(shards: Path) -> list[dict]:
    """Every clip: audio, emotion, split, whether its words are emotionally neutral."""
    index = ShardIndex.load(shards)
    reader = SampleReader(shards)
    clips = []
    for row in index.samples:
        sample = reader.read(row)
        clips.append({"audio": sample.audio, "emotion": sample.meta["labels"]["gold"]["emotion"],
                      "split": row.split, "neutral_text": bool(sample.meta.get("neutral_text"))})
    return clips


def _pool(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, F, D), (B,) -> (B, 2D): mean and std over each clip's valid frames."""
    mask = (torch.arange(frames.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).float()
    n = mask.sum(1).clamp(min=1)
    mean = (frames * mask).sum(1) / n
    var = (((frames - mean[:, None]) ** 2) * mask).sum(1) / n
    return torch.cat([mean, var.sqrt()], dim=-1)


@torch.no_grad()
def encode(encoder, clips: list[dict], batch: int = 16) -> tuple[np.ndarray, np.ndarray, float]:
    """Pooled (last layer, early layer) features per clip, and the seconds spent (features + encoder)."""
    captured = {}
    layer = encoder.model.layers[EARLY_LAYER]
    hook = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("early", o[0] if isinstance(o, tuple) else o))
    order = np.argsort([len(c["audio"]) for c in clips])  # similar lengths together: little padding
    last, early = [None] * len(clips), [None] * len(clips)
    spec = encoder.feature_spec()
    start = time.perf_counter()
    for s in range(0, len(order), batch):
        ids = order[s : s + batch]
        feats = [log_mel(clips[i]["audio"], spec) for i in ids]
        lengths = torch.tensor([f.shape[1] for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence([f.T for f in feats], batch_first=True).transpose(1, 2)
        frames, frame_lengths = encoder(padded, lengths)
        last_pooled, early_pooled = _pool(frames, frame_lengths), _pool(captured["early"], frame_lengths)
        for j, i in enumerate(ids):
            last[i], early[i] = last_pooled[j].numpy(), early_pooled[j].numpy()
    hook.remove()
    return np.stack(last), np.stack(early), time.perf_counter() - start


def fit_and_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Multinomial logistic regression on z-scored features; returns predictions where `test` is True."""
    torch.manual_seed(0)
    xt = torch.from_numpy(x).float()
    mu, sd = xt[train].mean(0), xt[train].std(0) + 1e-6
    xt = (xt - mu) / sd
    yt = torch.from_numpy(y)
    lin = torch.nn.Linear(x.shape[1], len(EMOTIONS))
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt[train]), yt[train]) + WEIGHT_DECAY * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(xt[test]).argmax(-1).numpy()


def random_encoder(folder: Path):
    """Same architecture and config as the pretrained encoder, random weights (seeded)."""
    cfg = json.loads((folder / "config.json").read_text())
    torch.manual_seed(0)
    return build_encoder(EncoderConfig(name="whisper", config={k: v for k, v in cfg.items() if not k.startswith("_")}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Linear emotion probe on frozen Whisper tiny.en features.")
    parser.add_argument("--shards", type=Path, default=HERE / "shards" / "general")
    parser.add_argument("--whisper", type=Path, default=None, help="converted tiny.en folder (default: convert once into the cache)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    clips = load_clips(args.shards)
    y = np.array([EMOTIONS.index(c["emotion"]) for c in clips])
    split = np.array([c["split"] for c in clips])
    neutral = np.array([c["neutral_text"] for c in clips])
    folder = args.whisper or ensure_whisper_tiny_en()
    pretrained = build_encoder(EncoderConfig(name="whisper", path=str(folder))).eval()
    last, early, seconds = encode(pretrained, clips)
    rand_last, _, rand_seconds = encode(random_encoder(folder).eval(), clips)
    audio_s = sum(len(c["audio"]) for c in clips) / 16000
    results = {"clips": {s: int((split == s).sum()) for s in ("train", "val", "test")},
               "encode_seconds": round(seconds, 1), "audio_seconds": round(audio_s, 1), "threads": 2}
    for name, feats in (("pretrained_last", last), ("pretrained_early", early), ("random_last", rand_last)):
        held = split != "train"
        correct = fit_and_score(feats, y, split == "train", held) == y[held]
        results[name] = {}
        for s in ("val", "test"):
            mine = split[held] == s
            results[name][f"{s}_acc"] = round(float(correct[mine].mean()), 4)
            results[name][f"{s}_acc_neutral_text"] = round(float(correct[mine & neutral[held]].mean()), 4)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"random-weights encoder took {rand_seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
