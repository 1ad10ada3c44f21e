"""Collaborative-filtering backbones, negative samplers and their losses."""
from .backbones import (BACKBONES, MF, NGCF, SGL, Backbone, LightGCN, build_backbone,
                        normalized_adjacency, sym_spmm)
from .losses import bpr_loss, info_nce
from .samplers import (AHNS, DNS, RNS, SAMPLERS, MixGCF, NegativeSampler, SampleResult,
                       ahns_select, build_sampler, candidate_scores, dns_select, mixgcf_mix,
                       mixgcf_select)

__all__ = [
    "BACKBONES", "SAMPLERS", "Backbone", "MF", "LightGCN", "NGCF", "SGL", "build_backbone",
    "normalized_adjacency", "sym_spmm", "bpr_loss", "info_nce", "NegativeSampler",
    "SampleResult", "RNS", "DNS", "AHNS", "MixGCF", "build_sampler", "candidate_scores",
    "dns_select", "ahns_select", "mixgcf_mix", "mixgcf_select",
]
