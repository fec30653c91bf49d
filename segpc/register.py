"""Register segpc's components into MMDetection's and MMSegmentation's registries.

Configs load this with ``custom_imports = dict(imports=['segpc.register'])``.
"""
from segpc.engine.checkpoint import allow_mmengine_checkpoints
from segpc.datasets.crop_dataset import SegPCCropDataset, SegPCNucleusDataset
from segpc.datasets.pannuke_dataset import BoxesFromMasks, PanNukeDataset  # noqa: F401
from segpc.datasets.sartorius_dataset import SartoriusDataset
from segpc.datasets.segpc_dataset import SegPCDataset
from segpc.datasets.semantic_dataset import SegPCSemanticDataset
from segpc.engine.hooks import UnfreezeBackboneHook  # noqa: F401
from segpc.evaluation.pannuke_metric import PanNukeMetric  # noqa: F401
from segpc.evaluation.metric import SegPCMetric
from segpc.evaluation.sartorius_metric import SartoriusMetric
from segpc.evaluation.semantic_metric import SegPCIoUMetric, SegPCSemanticMetric
from segpc.models.bmdeep_head import RegionalAttentionASPPHead  # noqa: F401
from segpc.models.efficientnet_lite import EfficientNetLite  # noqa: F401
from segpc.models.tta import SegPCTTAModel  # noqa: F401

allow_mmengine_checkpoints()

__all__ = ["SartoriusDataset", "SartoriusMetric", "SegPCCropDataset", "SegPCDataset", "SegPCIoUMetric",
           "SegPCMetric", "SegPCNucleusDataset", "SegPCSemanticDataset", "SegPCSemanticMetric"]
