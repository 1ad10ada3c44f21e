"""hnlmrec_lib: the library behind the HNLMRec study notebooks."""
__version__ = "0.1.0"
