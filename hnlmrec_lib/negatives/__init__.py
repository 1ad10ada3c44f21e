"""LLM-generated hard negatives: alignment modules, the sampler, text grounding."""
from .aligner import ManifoldProjector, SemanticAligner, SemanticAlignmentTransformer
from .grounding import fhns_text_stats, ground, normalize_title
from .llm_sampler import LLMBatchTrace, LLMNegativeSampler, align_loss, select_top_k

__all__ = [
    "ManifoldProjector", "SemanticAligner", "SemanticAlignmentTransformer",
    "fhns_text_stats", "ground", "normalize_title",
    "LLMBatchTrace", "LLMNegativeSampler", "align_loss", "select_top_k",
]
