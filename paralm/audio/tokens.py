"""How many audio tokens a clip becomes, without importing the model.

The model builds an `AudioTokenSpec` from its encoder and projector (`SpeechLM.audio_token_spec()`),
the CLI hands it to the data layer, and collate inserts exactly `num_tokens(n_samples)` placeholder
tokens per clip. The model asserts that its encoder + projector produce that many (a test checks the
two agree for every registered encoder and projector).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from paralm.audio.features import FeatureSpec, num_feature_frames


@dataclass(frozen=True)
class ConvLayer:
    """One 1-D convolution of the encoder front end (frames out = floor((n + 2p - k) / s) + 1)."""

    kernel: int
    stride: int
    padding: int = 0

    def out_len(self, n: int) -> int:
        return max(0, (n + 2 * self.padding - self.kernel) // self.stride + 1)


@dataclass(frozen=True)
class AudioTokenSpec:
    """Maps a clip length in samples to its number of audio tokens.

    Args:
        features: the feature front end the encoder consumes.
        encoder_convs: the encoder's downsampling convolutions, in order.
        chunk_frames: encoders with a fixed window (Whisper: 3000 mel frames = 30 s) encode longer clips
            in chunks of this many feature frames; 0 means no chunking.
        stack: projector downsampling factor k (tokens = ceil(encoder frames / k)).
        placeholder_token_id: the tokenizer id of the audio placeholder.
        placeholder_token: its text form.
    """

    features: FeatureSpec = field(default_factory=FeatureSpec)
    encoder_convs: tuple[ConvLayer, ...] = (ConvLayer(3, 1, 1), ConvLayer(3, 2, 1))
    chunk_frames: int = 3000
    stack: int = 1
    placeholder_token_id: int = -1
    placeholder_token: str = "<|audio|>"

    def encoder_frames_from_features(self, n_feature_frames: int) -> int:
        chunks = [n_feature_frames]
        if self.chunk_frames > 0 and n_feature_frames > self.chunk_frames:
            full, rest = divmod(n_feature_frames, self.chunk_frames)
            chunks = [self.chunk_frames] * full + ([rest] if rest else [])
        total = 0
        for n in chunks:
            for conv in self.encoder_convs:
                n = conv.out_len(n)
            total += n
        return total

    def encoder_frames(self, n_samples: int) -> int:
        return self.encoder_frames_from_features(num_feature_frames(self.features, n_samples))

    def num_tokens(self, n_samples: int) -> int:
        """Audio tokens for a clip of `n_samples` samples (at features.sample_rate)."""
        frames = self.encoder_frames(n_samples)
        return -(-frames // self.stack) if frames > 0 else 0

    def to_dict(self) -> dict:
        return asdict(self)
