"""Modules built on the fused ops: ``MLPMemory`` (the fast-weight MLP memory), the elastic
vocabulary (``ElasticEmbedding``, ``ElasticVocab``), the Metalearned Neural Memory controller
(``MNMController``, ``MemoryTransformerBlock``, ``mnm_loss``) and its sequence node."""
from .controller import MemoryTransformerBlock, MNMController, mnm_loss
from .elastic_embedding import ElasticEmbedding
from .elastic_vocab import ElasticVocab
from .mlp_memory import MLPMemory

__all__ = ["ElasticEmbedding", "ElasticVocab", "MLPMemory", "MNMController", "MemoryTransformerBlock",
           "mnm_loss"]
