"""Retrieval evaluation loop: index the queries, stream the database.

:class:`VideoRetrievalTestLoop` (and its validation twin
:class:`VideoRetrievalValLoop`) evaluate a retrieval model on a benchmark
(docs/method.md section 5):

1. every rank indexes **all** queries (``model.test_step``: backbone when the
   dataset yields frames, then region attention);
2. the database is split into contiguous shards across ranks, in blocks of
   ``target_batch_size`` videos (:class:`BlockShardSampler`), and streamed
   batch by batch; each database batch is indexed and compared with the
   queries, ``query_batch_size`` queries at a time, by
   ``model.video_similarity``;
3. each rank hands **one** score-matrix piece ``{query_ids [Q], target_ids
   [T_rank], scores float32 [Q, T_rank]}`` (NaN: a pair not scored) to the
   evaluator (``RetrievalAPMetric``), which gathers the pieces (one float
   matrix and one id list per rank, not an id array per query) and joins
   them on the main rank (``merge_score_pieces``) before evaluating the
   annotation's protocol; ``save_similarities`` gathers them the same way.

Rank-count invariance: a database batch is always the same block of
``target_batch_size`` consecutive database videos, whatever the number of
ranks, and query batches are the same on every rank, so every score is
computed from exactly the same tensors as in a single process, and the
pieces, concatenated in rank order, list the targets in the database order.
Metrics and saved similarities are therefore bit-identical for any number
of processes (ties included).

Videos that cannot be read are skipped: logged once (id and reason) as a
warning, gathered over ranks, excluded from the scored targets (the metric
then drops them from the relevant sets, as the reference protocols do) and
counted in the result as ``skipped_videos``, with ``skipped_queries``,
``skipped_database`` and ``lost_relevant`` (annotated relevant videos among
the skipped ones; -1 when the annotation does not list relevance). The
skips are bounded: above ``max(max_skipped, max_skipped_ratio x the
benchmark's videos)`` the evaluation stops with a
:class:`~hapvr_mm.utils.SkippedVideosError` naming the count and the first
ids (checked after the queries, after each database batch on its rank, and
over all ranks at the end), since the metrics would no longer be those of
the benchmark.

Registry names: ``VideoRetrievalTestLoop`` / ``VideoRetrievalValLoop``
(mmaction2 itself registers ``RetrievalTestLoop`` / ``RetrievalValLoop``
for text-video retrieval in the same ``mmaction`` scope). The sampler lives
in :mod:`.block_shard_sampler`, the similarities files in
:mod:`.similarity_io`.
"""
import copy
import logging
import os.path as osp
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmaction.registry import LOOPS
from mmengine.dist import (all_gather_object, collect_results, get_dist_info,
                           is_main_process)
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader

from hapvr_mm.evaluation.annotations import (RetrievalAnnotation,
                                             load_annotation)
from hapvr_mm.evaluation.metrics import merge_score_pieces
from hapvr_mm.models.retrievers.base import check_retriever
from hapvr_mm.utils.errors import SkippedVideosError
from .similarity_io import write_similarities

__all__ = ['VideoRetrievalTestLoop', 'VideoRetrievalValLoop']


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


@LOOPS.register_module()
class VideoRetrievalTestLoop(BaseLoop):
    """Evaluate retrieval: index queries, stream database shards, score.

    Args:
        runner (Runner): the runner.
        dataloader (dict): dataloader config whose ``dataset`` is a
            ``RetrievalDataset`` config; two dataloaders are built from it,
            with ``dataset.split`` set to ``'queries'`` (every rank loads all
            queries) and ``'targets'`` (contiguous shards of whole
            ``target_batch_size`` blocks, batch size ``target_batch_size``).
            ``batch_size`` of the config is the query indexing batch size.
        evaluator (dict | list | Evaluator): usually
            ``dict(type='RetrievalAPMetric')``: a metric without an
            annotation gets the dataset's (loaded once, shared by the query
            and target datasets and the metric).
        query_batch_size (int): queries per similarity pass. Defaults to 16.
        target_batch_size (int): database videos per batch (indexing and
            similarity). Defaults to 16.
        save_similarities (bool | str): write the scores to the work dir:
            True writes the compact ``similarities.npz`` (query ids, target
            ids, float32 ``[Q, T]`` scores, NaN where not scored); a string
            is the file name (relative to the work dir unless absolute),
            whose extension picks the form: ``.npz`` compact, ``.pkl`` /
            ``.pickle`` a pickled ``{query: {target: score}}``, anything
            else that dict as JSON (see :mod:`.similarity_io`). Defaults to
            False.
        fp16 (bool): run indexing and similarity under mmengine's
            ``autocast``. Defaults to False.
        log_interval (int): log progress every ``log_interval`` database
            batches. Defaults to 50.
        tune_malloc (bool): opt-in: on a CPU-only run under glibc, raise
            malloc's mmap/trim thresholds for the whole process
            (:func:`hapvr_mm.utils.tune_glibc_malloc`) so the large
            temporaries of each similarity pass are reused instead of
            page-faulted in again; the process then keeps up to 512 MB of
            freed memory. ``tools/test.py --tune-malloc`` sets it. Measured
            effect: see docs/benchmarks.md. Defaults to False.
        max_skipped_ratio (float, optional): largest share of the
            benchmark's videos (queries and database, distinct ids) that
            may be skipped as unreadable; above it (and above
            ``max_skipped``) the evaluation stops with
            :class:`~hapvr_mm.utils.SkippedVideosError`. None: no share
            limit (``max_skipped`` alone). Defaults to 0.01.
        max_skipped (int): number of skipped videos always allowed,
            whatever the share (e.g. the few known-missing videos of a
            benchmark). Defaults to 0.

    Returns (of :meth:`run`):
        dict: the evaluator's metrics plus ``skipped_videos``,
        ``skipped_queries``, ``skipped_database`` and ``lost_relevant``
        (int).
    """

    mode = 'test'

    def __init__(self,
                 runner,
                 dataloader: Union[dict, Any],
                 evaluator: Union[dict, list, Evaluator],
                 query_batch_size: int = 16,
                 target_batch_size: int = 16,
                 save_similarities: Union[bool, str] = False,
                 fp16: bool = False,
                 log_interval: int = 50,
                 tune_malloc: bool = False,
                 max_skipped_ratio: Optional[float] = 0.01,
                 max_skipped: int = 0) -> None:
        if max_skipped_ratio is not None and (
                isinstance(max_skipped_ratio, bool)
                or not isinstance(max_skipped_ratio, (int, float))
                or not 0 <= max_skipped_ratio <= 1):
            raise ValueError('max_skipped_ratio must be None or a number in '
                             f'[0, 1], got {max_skipped_ratio!r}')
        if isinstance(
                max_skipped,
                bool) or not isinstance(max_skipped, int) or max_skipped < 0:
            raise ValueError(
                f'max_skipped must be an int >= 0, got {max_skipped!r}')
        for name, value in (('query_batch_size', query_batch_size),
                            ('target_batch_size', target_batch_size),
                            ('log_interval', log_interval)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got '
                                 f'{value!r}')
        if isinstance(dataloader, DataLoader) or not isinstance(
                dataloader, Mapping) or 'dataset' not in dataloader:
            raise ValueError(
                'VideoRetrievalTestLoop needs a dataloader config '
                "dict with a 'dataset' (RetrievalDataset), got "
                f'{type(dataloader).__name__}')
        self._runner = runner
        self.query_batch_size = query_batch_size
        self.target_batch_size = target_batch_size
        self.save_similarities = save_similarities
        self.fp16 = fp16
        self.log_interval = log_interval
        self.tune_malloc = bool(tune_malloc)
        self.max_skipped_ratio = max_skipped_ratio
        self.max_skipped = max_skipped
        dataloader = self._load_annotation_once(dataloader)
        seed = getattr(runner, 'seed', None)
        diff_rank_seed = getattr(runner, '_randomness_cfg',
                                 {}).get('diff_rank_seed', False)
        self.query_dataloader = runner.build_dataloader(
            self._split_cfg(dataloader, 'queries'),
            seed=seed,
            diff_rank_seed=diff_rank_seed)
        self.dataloader = runner.build_dataloader(
            self._split_cfg(dataloader, 'targets'),
            seed=seed,
            diff_rank_seed=diff_rank_seed)
        if isinstance(evaluator, (dict, list)):
            self.evaluator = runner.build_evaluator(evaluator)
        else:
            self.evaluator = evaluator
        dataset = self.dataloader.dataset
        self.evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
        self.annotation = getattr(dataset, 'annotation', None)
        self.query_set = set(
            getattr(self.query_dataloader.dataset, 'video_ids', []))
        self.num_videos = len(
            self.query_set
            | set(getattr(self.dataloader.dataset, 'video_ids', [])))
        self._share_annotation()

    @property
    def skip_limit(self) -> int:
        """Largest number of skipped videos the evaluation accepts."""
        if self.max_skipped_ratio is None:
            return self.max_skipped
        return max(self.max_skipped,
                   int(self.max_skipped_ratio * self.num_videos))

    def _check_skipped(self, skipped: Mapping[str, str], where: str) -> None:
        """Stop when more videos were skipped than :attr:`skip_limit`.

        Raises:
            SkippedVideosError: naming the count, the limit and the first
                ids with their reasons.
        """
        if len(skipped) <= self.skip_limit:
            return
        first = '; '.join(f'{vid!r}: {reason}'
                          for vid, reason in list(skipped.items())[:5])
        more = len(skipped) - min(len(skipped), 5)
        ratio = ('none' if self.max_skipped_ratio is None else
                 f'{self.max_skipped_ratio:g}')
        raise SkippedVideosError(
            f'{len(skipped)} of the {self.num_videos} benchmark videos '
            f'could not be read ({where}), more than the '
            f'{self.skip_limit} allowed (max_skipped_ratio={ratio}, '
            f'max_skipped={self.max_skipped} of '
            f'{type(self).__name__}): the metrics would not be the '
            f'benchmark\'s. First skipped: {first}' +
            (f' (and {more} more)' if more else '') +
            '. Fix or re-download these videos, or raise the limit '
            '(e.g. --cfg-options test_cfg.max_skipped=N)')

    def _skip_summary(self, skipped: Mapping[str, str]) -> Dict[str, int]:
        """Skipped queries, database videos and relevant videos lost."""
        queries = sum(1 for vid in skipped if vid in self.query_set)
        summary = dict(
            skipped_queries=queries,
            skipped_database=len(skipped) - queries,
            lost_relevant=-1)
        relevance = getattr(self.annotation, 'relevance', None)
        if isinstance(relevance, Mapping) and self.annotation is not None:
            lost = set()
            codes = {self.annotation.code(v) for v in skipped}
            codes.discard(-1)
            for entry in relevance.values():
                rel = entry[0] if isinstance(entry, tuple) else entry
                lost.update(
                    int(c) for c in np.asarray(rel).reshape(-1)
                    if int(c) in codes)
            summary['lost_relevant'] = len(lost)
        return summary

    @staticmethod
    def _load_annotation_once(dataloader: Mapping) -> Mapping:
        """Load the dataset's annotation here, once, for both splits.

        The query and target datasets (and, through
        :meth:`_share_annotation`, the metric) then share one loaded object
        instead of each reading the file.
        """
        dataset = dataloader['dataset']
        ann = dataset.get('annotation') if isinstance(dataset,
                                                      Mapping) else None
        if not isinstance(ann, Mapping):
            return dataloader
        out = dict(dataloader)
        out['dataset'] = dict(dataset, annotation=load_annotation(ann))
        return out

    def _share_annotation(self) -> None:
        """Hand the dataset's annotation to metrics built without one."""
        for metric in getattr(self.evaluator, 'metrics', []):
            if not hasattr(metric, 'set_annotation') or \
                    getattr(metric, 'annotation', None) is not None:
                continue
            if self.annotation is None:
                raise ValueError(
                    f'{type(metric).__name__} has no annotation and the '
                    'dataset has none (it lists video_ids): give the '
                    'dataset or the evaluator an annotation')
            metric.set_annotation(self.annotation)

    def _split_cfg(self, cfg: Mapping, split: str) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        dataset = dict(cfg['dataset'])
        dataset['split'] = split
        cfg['dataset'] = dataset
        cfg.setdefault('collate_fn', dict(type='retrieval_collate'))
        cfg.pop('batch_sampler', None)
        cfg['drop_last'] = False
        if split == 'queries':
            cfg.setdefault('batch_size', 1)
            cfg['sampler'] = dict(
                type='BlockShardSampler', block_size=1, shard=False)
        else:
            cfg['batch_size'] = self.target_batch_size
            cfg['sampler'] = dict(
                type='BlockShardSampler',
                block_size=self.target_batch_size,
                shard=True)
        return cfg

    # ------------------------------------------------------------------ #
    def _hook(self, name: str, **kwargs) -> None:
        self.runner.call_hook(name.format(mode=self.mode), **kwargs)

    def _split_batch(self, batch: dict, skipped: Dict[str, str],
                     phase: str) -> Tuple[Optional[dict], List[str]]:
        """Drop skipped videos from a batch, logging each one once."""
        inputs, samples = batch['inputs'], batch['data_samples']
        keep_inputs, keep_samples, ids = [], [], []
        for x, sample in zip(inputs, samples):
            vid = str(sample.metainfo['video_id'])
            if x is None:
                reason = str(sample.metainfo.get('skip_reason', 'unknown'))
                if vid not in skipped:
                    skipped[vid] = reason
                    print_log(
                        f'skipping {phase} video {vid!r}: {reason}',
                        logger='current',
                        level=logging.WARNING)
                continue
            keep_inputs.append(x)
            keep_samples.append(sample)
            ids.append(vid)
        if not keep_inputs:
            return None, []
        return dict(inputs=keep_inputs, data_samples=keep_samples), ids

    def _index(self, model, batch: dict) -> Tuple[List[torch.Tensor], list]:
        with autocast(enabled=self.fp16):
            outputs = model.test_step(batch)
        return [s.features for s in outputs], outputs

    def _index_queries(self, model, skipped: Dict[str, str]
                       ) -> Tuple[List[str], List[torch.Tensor]]:
        ids: List[str] = []
        feats: List[torch.Tensor] = []
        total = len(self.query_dataloader.dataset)
        start = time.perf_counter()
        n_batches = len(self.query_dataloader)
        every = max(1, min(self.log_interval, n_batches // 10 or 1))
        for i, batch in enumerate(self.query_dataloader):
            valid, vids = self._split_batch(batch, skipped, 'query')
            if valid is not None:
                f, _ = self._index(model, valid)
                ids += vids
                feats += f
            if (i + 1) % every == 0 or i + 1 == n_batches:
                done = len(ids) + len(skipped)
                rate = done / max(time.perf_counter() - start, 1e-9)
                print_log(
                    f'[queries] indexed {len(ids)}/{total} '
                    f'({len(skipped)} skipped), {rate:.1f} videos/s',
                    logger='current')
        return ids, feats

    def _allowed_targets(self,
                         query_ids: Sequence[str]) -> Optional[List[set]]:
        """Per-query target sets when the protocol restricts them."""
        ann = self.annotation
        if ann is None:
            return None
        if type(ann).targets_of is RetrievalAnnotation.targets_of:
            return None
        return [set(ann.targets_of(q)) for q in query_ids]

    @torch.no_grad()
    def run(self) -> dict:
        """Run the evaluation.

        Returns:
            dict: metrics (with ``skipped_videos``).
        """
        self._hook('before_{mode}')
        self._hook('before_{mode}_epoch')
        model = self.runner.model
        model.eval()
        core = model.module if is_model_wrapper(model) else model
        # one clear error for a model without index_video/video_similarity
        check_retriever(core, type(self).__name__)
        rank, world_size = get_dist_info()
        skipped: Dict[str, str] = {}
        if self.tune_malloc and not torch.cuda.is_available():
            from hapvr_mm.utils import tune_glibc_malloc
            if tune_glibc_malloc():
                print_log(
                    'glibc malloc thresholds raised for CPU '
                    'evaluation (tune_malloc=True)',
                    logger='current')

        query_ids, query_feats = self._index_queries(model, skipped)
        # every rank indexed every query: the same decision on all ranks
        self._check_skipped(skipped, 'among the queries')
        allowed = self._allowed_targets(query_ids)
        nq = len(query_ids)
        # this rank's scores: the database shard's scored targets as columns
        target_ids: List[str] = []
        blocks: List[np.ndarray] = []

        n_batches = len(self.dataloader)
        shard_size = len(self.dataloader.sampler) if hasattr(
            self.dataloader, 'sampler') else 0
        seen = pairs = 0
        start = time.perf_counter()
        for idx, batch in enumerate(self.dataloader):
            self._hook('before_{mode}_iter', batch_idx=idx, data_batch=batch)
            seen += len(batch['inputs'])
            valid, tids = self._split_batch(batch, skipped, 'database')
            # this rank alone is over the limit: so is the whole run
            self._check_skipped(skipped, 'reading the database')
            outputs: list = []
            if valid is not None and nq:
                tfeats, outputs = self._index(model, valid)
                pairs += self._score(core, query_ids, query_feats, tfeats,
                                     tids, allowed, target_ids, blocks)
            if (idx + 1) % self.log_interval == 0 or idx + 1 == n_batches:
                elapsed = max(time.perf_counter() - start, 1e-9)
                eta = elapsed / (idx + 1) * (n_batches - idx - 1)
                print_log(
                    f'[database] batch {idx + 1}/{n_batches}, videos '
                    f'{seen}/{shard_size} (rank {rank}/{world_size}), '
                    f'{pairs} pairs, {pairs / elapsed:.1f} pairs/s, '
                    f'eta {_fmt_time(eta)}',
                    logger='current')
            self._hook(
                'after_{mode}_iter',
                batch_idx=idx,
                data_batch=batch,
                outputs=outputs)

        piece = dict(
            query_ids=np.asarray(query_ids, dtype=str),
            target_ids=np.asarray(target_ids, dtype=str),
            scores=(np.concatenate(blocks, axis=1) if blocks else np.zeros(
                (nq, 0), dtype=np.float32)))
        del blocks
        all_skipped: Dict[str, str] = {}
        for part in all_gather_object(skipped) if world_size > 1 else [
                skipped
        ]:
            for vid, reason in part.items():
                all_skipped.setdefault(vid, reason)
        self._check_skipped(all_skipped, 'over all ranks')
        if all_skipped:
            print_log(
                f'{len(all_skipped)} video(s) skipped (missing or '
                'unreadable) and excluded from the evaluation',
                logger='current',
                level=logging.WARNING)

        if self.save_similarities:
            self._save(piece, world_size)
        self.evaluator.process(data_samples=[piece], data_batch=None)
        del piece
        metrics = self.evaluator.evaluate(world_size)
        metrics['skipped_videos'] = len(all_skipped)
        metrics.update(self._skip_summary(all_skipped))
        self._hook('after_{mode}_epoch', metrics=metrics)
        self._hook('after_{mode}')
        return metrics

    def _score(self, core, query_ids: Sequence[str],
               query_feats: List[torch.Tensor], tfeats: List[torch.Tensor],
               tids: List[str], allowed: Optional[List[set]],
               target_ids: List[str], blocks: List[np.ndarray]) -> int:
        """Score one database batch against every query batch.

        Appends the batch's scored targets to ``target_ids`` and their
        float32 scores ``[Q, n]`` (NaN where the protocol does not pair a
        query with a target) to ``blocks``; targets no query is paired with
        are left out.

        Returns:
            int: number of pairs computed.
        """
        pairs = 0
        nq = len(query_feats)
        block = np.full((nq, len(tids)), np.nan, dtype=np.float32)
        for q0 in range(0, nq, self.query_batch_size):
            q1 = min(q0 + self.query_batch_size, nq)
            cols = list(range(len(tids)))
            if allowed is not None:
                cols = [
                    j for j in cols
                    if any(tids[j] in allowed[i] for i in range(q0, q1))
                ]
                if not cols:
                    continue
            with autocast(enabled=self.fp16):
                sim = core.video_similarity(
                    query_feats[q0:q1], [tfeats[j] for j in cols],
                    indexed=True)
            sim = sim.float().cpu().numpy()
            pairs += sim.size
            if not np.isfinite(sim).all():
                i, k = np.argwhere(~np.isfinite(sim))[0]
                raise ValueError(
                    f'{type(core).__name__}.video_similarity gave '
                    f'{sim[i, k]} for query {query_ids[q0 + i]!r} and target '
                    f'{tids[cols[k]]!r}: scores must be finite')
            if allowed is None:
                block[q0:q1] = sim
                continue
            for i in range(q0, q1):
                sel = [k for k, j in enumerate(cols) if tids[j] in allowed[i]]
                if sel:
                    block[i, [cols[k] for k in sel]] = sim[i - q0, sel]
        if allowed is None:
            scored = np.ones(len(tids), dtype=bool)
        else:
            scored = ~np.isnan(block).all(axis=0)
        if scored.all():
            target_ids.extend(tids)
            blocks.append(block)
        elif scored.any():
            target_ids.extend(t for t, keep in zip(tids, scored) if keep)
            blocks.append(np.ascontiguousarray(block[:, scored]))
        return pairs

    def _save(self, piece: dict, world_size: int) -> None:
        """Gather every rank's score matrix; the main rank writes the file.
        """
        gathered = collect_results([piece], world_size, 'cpu')
        if not is_main_process():
            return
        matrix = merge_score_pieces(gathered)
        del gathered
        name = self.save_similarities
        if not isinstance(name, str):
            name = 'similarities.npz'
        path = name if osp.isabs(name) else osp.join(self.runner.work_dir,
                                                     name)
        write_similarities(matrix, path)
        print_log(f'similarities saved to {path}', logger='current')


@LOOPS.register_module()
class VideoRetrievalValLoop(VideoRetrievalTestLoop):
    """:class:`VideoRetrievalTestLoop` used as ``val_cfg`` (validation).

    Same arguments; calls the ``before_val`` / ``after_val_epoch`` / ...
    hooks instead of the test ones, so that ``CheckpointHook(save_best=...)``
    and the logger see the metrics.
    """

    mode = 'val'
