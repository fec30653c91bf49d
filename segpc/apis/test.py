"""Testing: what ``tools/test.py`` runs — scores a checkpoint, writes a dump and a submission.

Instance configs (MMDetection) test with ``SegPCMetric``, semantic configs (MMSegmentation)
with ``SegPCSemanticMetric`` (cells recovered from the maps) beside mmseg's IoU metric; both
write the same dump and submission. PanNuke and Sartorius configs test with their own metrics.
"""
from __future__ import annotations

from typing import Optional

from segpc.apis.config import check_data, load_config
from segpc.io import SegPCError

PREDICTION_METRICS = ("SegPCMetric", "SegPCSemanticMetric", "PanNukeMetric", "SartoriusMetric")
MASK_SUBMISSION_METRICS = ("SegPCMetric", "SegPCSemanticMetric")  # <id>_<k>.bmp folders


def prediction_metric_cfg(evaluator) -> Optional[dict]:
    """The metric that writes predictions, in a config's evaluator (one metric or a list)."""
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    return next((m for m in metrics if m.get("type") in PREDICTION_METRICS), None)


def test(config: str, checkpoint: str, out: Optional[str] = None, submission: Optional[str] = None,
         score_thr: Optional[float] = None, work_dir: Optional[str] = None,
         cfg_options: Optional[dict] = None, format_only: bool = False, tta: bool = False,
         overwrite: bool = False, details: bool = False):
    """Run ``checkpoint`` on the config's test split.

    Returns the exact :class:`~segpc.evaluation.miou.MIoUResult` (``None`` with ``format_only``);
    with ``PanNukeMetric``, :class:`~segpc.evaluation.pq.PQResult`, and ``out`` is the ``.npy``
    of predictions in PanNuke's layout; with ``SartoriusMetric``,
    :class:`~segpc.evaluation.kaggle_ap.KaggleAPResult`, and ``submission`` is a CSV file.
    With ``details``, ``(result, metrics)`` where ``metrics`` is every metric the test logged
    (e.g. mmseg's per-class IoU and Dice).

    ``tta``: flip test-time augmentation (:func:`segpc.models.tta.apply_tta`; instance configs).
    ``overwrite``: replace a previous submission in ``submission`` (never a folder holding
    anything else: :func:`segpc.io.check_output_dir`).
    """
    from mmengine.runner import Runner

    from segpc.engine.checkpoint import check_checkpoint

    check_checkpoint(checkpoint)
    if out:
        from segpc.structures import check_dump_path

        check_dump_path(out)
    cfg = load_config(config, cfg_options, work_dir)
    check_data(cfg, keys=("test_dataloader",))
    cfg.load_from = checkpoint
    evaluator = prediction_metric_cfg(cfg.test_evaluator)
    if evaluator is None:
        raise SegPCError(config, f"test_evaluator must be {', '.join(PREDICTION_METRICS[:-1])} or "
                                 f"{PREDICTION_METRICS[-1]} to write predictions")
    kind = evaluator.get("type")
    if submission and kind == "PanNukeMetric":
        raise SegPCError(config, "--submission needs SegPCMetric (PanNuke predictions: --out PRED.npy)")
    if out:
        evaluator.outfile = out
    if submission and kind in MASK_SUBMISSION_METRICS:  # a folder of masks
        evaluator.submission_dir = submission
        evaluator.overwrite = overwrite
    elif submission:  # Sartorius: a CSV file
        evaluator.submission = submission
    if score_thr is not None:  # Sartorius: the same threshold for every image class
        from segpc.datasets.sartorius import CELL_TYPES

        evaluator.score_thr = dict.fromkeys(CELL_TYPES, score_thr) if kind == "SartoriusMetric" else score_thr
    if format_only:
        if isinstance(cfg.test_evaluator, (list, tuple)):  # the other metrics need ground truth
            cfg.test_evaluator = evaluator
        evaluator.format_only = True
    if tta:
        if cfg.get("default_scope", "mmdet") != "mmdet":
            raise SegPCError(config, "--tta is available for instance (MMDetection) configs only")
        from segpc.models.tta import apply_tta

        apply_tta(cfg)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    metric = next(m for m in runner.test_evaluator.metrics if hasattr(m, "result"))
    return (metric.result, metrics) if details else metric.result
