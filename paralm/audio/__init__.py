"""Audio front end shared by the data layer and the model (neither imports the other)."""

from paralm.audio.features import FeatureSpec, log_mel, num_feature_frames
from paralm.audio.tokens import AudioTokenSpec, ConvLayer

__all__ = ["AudioTokenSpec", "ConvLayer", "FeatureSpec", "log_mel", "num_feature_frames"]
