"""mtlm: image annotation with multi-task label-specific local metrics.

Nearest-neighbour annotation (JEC, 2PKNN-style pools and votes) where every
label ranks training images by its own learned metric
``D_m(q, p) = (w_* + w_m) . d(q, p)`` (Xu et al., MTAP 2016).
"""

from mtlm._annotator import METHODS, MTLMAnnotator
from mtlm._dask import dask_client
from mtlm._distances import METRICS, BaseDistances
from mtlm._persistence import load_model
from mtlm._tuning import default_grid
from mtlm.datasets import load_dataset

__all__ = [
    "BaseDistances",
    "METHODS",
    "METRICS",
    "MTLMAnnotator",
    "dask_client",
    "default_grid",
    "load_dataset",
    "load_model",
]
__version__ = "0.1.0.dev0"
