"""Text generation: decoding strategies (greedy, beam search, sampling) for the BERT encoder-decoder."""

from prefine.generation.decoding import DecodingConfig, SpecialIds, generate

__all__ = ["DecodingConfig", "SpecialIds", "generate"]
