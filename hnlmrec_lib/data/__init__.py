"""Data layer: readers per source, preprocessing, split, popularity groups, sparsity subsets."""
from .dataset import InteractionData
from .groups import add_pop_groups, popularity_groups, sparsity_subset
from .loader import load_dataset
from .raw import (DataError, EmptyDataError, MalformedLineError, MissingFieldError,
                  MissingFileError)

__all__ = [
    "InteractionData", "load_dataset", "popularity_groups", "add_pop_groups", "sparsity_subset",
    "DataError", "EmptyDataError", "MalformedLineError", "MissingFieldError", "MissingFileError",
]
