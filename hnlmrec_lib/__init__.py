"""hnlmrec_lib: the library behind the HNLMRec study notebooks."""
from .runtime import keep_freed_memory

__version__ = "0.1.0"

# Every process of the study (notebook kernel, grid worker, test, benchmark) imports the
# library first: keep freed memory in the heap instead of page-faulting it back per step.
keep_freed_memory()
