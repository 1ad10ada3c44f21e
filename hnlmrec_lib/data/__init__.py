"""Data layer: readers per source, preprocessing, split, popularity groups, sparsity subsets."""
from .dataset import InteractionData

__all__ = ["InteractionData"]
