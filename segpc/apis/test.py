"""Testing: what ``tools/test.py`` runs — scores a checkpoint, writes a dump and a submission."""
from __future__ import annotations

from typing import Optional

from segpc.apis.config import check_data, load_config
from segpc.io import SegPCError


def test(config: str, checkpoint: str, out: Optional[str] = None, submission: Optional[str] = None,
         score_thr: Optional[float] = None, work_dir: Optional[str] = None,
         cfg_options: Optional[dict] = None, format_only: bool = False, tta: bool = False,
         overwrite: bool = False):
    """Run ``checkpoint`` on the config's test split.

    Returns the exact :class:`~segpc.evaluation.miou.MIoUResult` (``None`` with ``format_only``);
    with ``PanNukeMetric``, :class:`~segpc.evaluation.pq.PQResult`, and ``out`` is the ``.npy``
    of predictions in PanNuke's layout; with ``SartoriusMetric``,
    :class:`~segpc.evaluation.kaggle_ap.KaggleAPResult`, and ``submission`` is a CSV file.

    ``tta``: flip test-time augmentation (:func:`segpc.models.tta.apply_tta`).
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
    evaluator = cfg.test_evaluator
    kind = evaluator.get("type")
    if kind not in ("SegPCMetric", "PanNukeMetric", "SartoriusMetric"):
        raise SegPCError(config, "test_evaluator must be SegPCMetric, PanNukeMetric or SartoriusMetric "
                                 "to write predictions")
    if submission and kind == "PanNukeMetric":
        raise SegPCError(config, "--submission needs SegPCMetric (PanNuke predictions: --out PRED.npy)")
    if out:
        evaluator.outfile = out
    if submission and kind == "SegPCMetric":  # a folder of masks
        evaluator.submission_dir = submission
        evaluator.overwrite = overwrite
    elif submission:  # Sartorius: a CSV file
        evaluator.submission = submission
    if score_thr is not None:  # Sartorius: the same threshold for every image class
        from segpc.datasets.sartorius import CELL_TYPES

        evaluator.score_thr = dict.fromkeys(CELL_TYPES, score_thr) if kind == "SartoriusMetric" else score_thr
    if format_only:
        evaluator.format_only = True
    if tta:
        from segpc.models.tta import apply_tta

        apply_tta(cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()
    return runner.test_evaluator.metrics[0].result
