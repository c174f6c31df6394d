"""Retrieval evaluation loop: index the queries, stream the database.

:class:`VideoRetrievalTestLoop` (and its validation twin
:class:`VideoRetrievalValLoop`) evaluate a HAP-VR model on a retrieval
benchmark (METHOD.md section 5):

1. every rank indexes **all** queries (``model.test_step``: backbone when the
   dataset yields frames, then region attention);
2. the database is split into contiguous shards across ranks, in blocks of
   ``target_batch_size`` videos (:class:`BlockShardSampler`), and streamed
   batch by batch; each database batch is indexed and compared with the
   queries, ``query_batch_size`` queries at a time, by
   ``HAPVR.video_similarity``;
3. each rank hands one piece ``{query_id, target_ids, scores}`` per query to
   the evaluator (``RetrievalAPMetric``), which gathers the pieces in rank
   order and evaluates the annotation's protocol.

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
counted in the result as ``skipped_videos``.

Registry names: ``VideoRetrievalTestLoop`` / ``VideoRetrievalValLoop``
(mmaction2 itself registers ``RetrievalTestLoop`` / ``RetrievalValLoop``
for text-video retrieval in the same ``mmaction`` scope, so those names
cannot be reused). ``RetrievalTestLoop`` / ``RetrievalValLoop`` are Python
aliases of this module only.
"""
import copy
import json
import logging
import math
import os.path as osp
import pickle
import time
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
from mmaction.registry import DATA_SAMPLERS, LOOPS
from mmengine.dist import (all_gather_object, collect_results, get_dist_info,
                           is_main_process)
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import DataLoader, Sampler

__all__ = [
    'VideoRetrievalTestLoop', 'VideoRetrievalValLoop', 'RetrievalTestLoop',
    'RetrievalValLoop', 'BlockShardSampler', 'shard_blocks',
    'format_metrics_table', 'pieces_to_similarities', 'write_similarities',
    'load_similarities', 'similarities_to_scores'
]


# ---------------------------------------------------------------------- #
# sharding
def shard_blocks(num_items: int, block_size: int, rank: int,
                 world_size: int) -> range:
    """Indices of rank ``rank``'s contiguous shard, aligned to blocks.

    The ``ceil(num_items / block_size)`` blocks of ``block_size``
    consecutive indices are split into ``world_size`` contiguous runs whose
    sizes differ by at most one block; rank ``r`` gets the blocks
    ``[floor(r * B / W), floor((r + 1) * B / W))``.

    Args:
        num_items (int): dataset length ``N >= 0``.
        block_size (int): items per block, ``>= 1``.
        rank (int): ``0 <= rank < world_size``.
        world_size (int): ``>= 1``.

    Returns:
        range: the item indices of the shard (possibly empty).
    """
    if block_size < 1 or world_size < 1 or not 0 <= rank < world_size \
            or num_items < 0:
        raise ValueError('expected num_items >= 0, block_size >= 1 and '
                         f'0 <= rank < world_size, got num_items={num_items},'
                         f' block_size={block_size}, rank={rank}, '
                         f'world_size={world_size}')
    blocks = math.ceil(num_items / block_size)
    first = rank * blocks // world_size
    last = (rank + 1) * blocks // world_size
    return range(first * block_size, min(last * block_size, num_items))


@DATA_SAMPLERS.register_module()
class BlockShardSampler(Sampler):
    """Deterministic sampler: contiguous, block-aligned, disjoint shards.

    Unlike mmengine's ``DefaultSampler`` (interleaved indices), each rank
    gets a contiguous run of whole blocks (see :func:`shard_blocks`), with no
    padding. With a dataloader ``batch_size`` equal to ``block_size`` every
    batch is the same block of videos whatever the number of ranks.

    Args:
        dataset: the dataset (only its length is used).
        block_size (int): items per block. Defaults to 1.
        shard (bool): split across ranks; False gives every rank all items.
            Defaults to True.
        seed (int, optional): unused (accepted from mmengine's dataloader
            builder).
    """

    def __init__(self,
                 dataset,
                 block_size: int = 1,
                 shard: bool = True,
                 seed: Optional[int] = None) -> None:
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f'block_size must be an int >= 1, got '
                             f'{block_size!r}')
        rank, world_size = get_dist_info()
        if not shard:
            rank, world_size = 0, 1
        self.indices = shard_blocks(len(dataset), block_size, rank, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """No-op (the order never changes)."""


# ---------------------------------------------------------------------- #
# similarities files and tables
def pieces_to_similarities(
        pieces: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, float]]:
    """Merge score pieces into ``{query: {target: score}}``.

    Args:
        pieces (sequence[dict]): ``query_id``, ``target_ids`` ``[n]``,
            ``scores`` ``[n]``, in order; pieces of one query are merged in
            the given order (first occurrence of a target wins).

    Returns:
        dict: query id -> (target id -> float score).
    """
    out: Dict[str, Dict[str, float]] = {}
    for piece in pieces:
        row = out.setdefault(str(piece['query_id']), {})
        for tid, score in zip(
                np.asarray(piece['target_ids']).tolist(),
                np.asarray(piece['scores'], dtype=np.float64).tolist()):
            row.setdefault(str(tid), score)
    return out


def write_similarities(sims: Mapping[str, Mapping[str, float]],
                       path: str) -> str:
    """Write ``{query: {target: score}}`` as JSON or pickle (by extension).

    Args:
        sims (dict): similarities.
        path (str): ``*.pkl`` / ``*.pickle`` writes a pickle, anything else
            JSON.

    Returns:
        str: ``path``.
    """
    if path.endswith(('.pkl', '.pickle')):
        with open(path, 'wb') as f:
            pickle.dump({q: dict(t) for q, t in sims.items()}, f)
    else:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(sims, f)
    return path


def load_similarities(path: str) -> Dict[str, Dict[str, float]]:
    """Read a similarities file written by the loop (JSON or pickle).

    Accepts ``{query: {target: score}}`` and ``{query: (target_ids,
    scores)}``.

    Args:
        path (str): the file (``*.json``, or a pickle).

    Returns:
        dict: query id -> (target id -> float score).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'similarities file not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(1)
    try:
        if head == b'\x80':
            with open(path, 'rb') as f:
                data = pickle.load(f)
        else:
            with open(path, 'r', encoding='utf-8') as f:
                data = json.load(f)
    except Exception as err:  # noqa: BLE001 - any parse failure
        raise ValueError(f'{path} is neither JSON nor a pickle of '
                         '{query: {target: score}} '
                         f'({type(err).__name__}: {err})') from err
    if not isinstance(data, Mapping):
        raise ValueError(f'{path}: expected {{query: {{target: score}}}}, '
                         f'got {type(data).__name__}')
    out: Dict[str, Dict[str, float]] = {}
    for query, row in data.items():
        if isinstance(row, Mapping):
            out[str(query)] = {str(t): float(s) for t, s in row.items()}
        elif isinstance(row, (tuple, list)) and len(row) == 2:
            ids, scores = row
            out[str(query)] = {
                str(t): float(s)
                for t, s in zip(
                    np.asarray(ids).tolist(),
                    np.asarray(scores).tolist())
            }
        else:
            raise ValueError(f'{path}: entry of query {query!r} must be '
                             f'{{target: score}} or (target_ids, scores), '
                             f'got {type(row).__name__}')
    return out


def similarities_to_scores(
    sims: Mapping[str, Mapping[str, float]]
) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{query: {target: score}}`` to the annotations' score format.

    Args:
        sims (dict): similarities.

    Returns:
        dict: query id -> ``(target_ids [n] str, scores [n] float64)``.
    """
    return {
        q: (np.asarray(list(row.keys()), dtype=str),
            np.asarray(list(row.values()), dtype=np.float64))
        for q, row in sims.items()
    }


def format_metrics_table(metrics: Mapping[str, Any],
                         title: str = 'Retrieval metrics') -> str:
    """A plain-text table of metric names and values.

    Args:
        metrics (dict): name -> value (floats printed with 4 decimals).
        title (str): first line.

    Returns:
        str: the table (no trailing newline).
    """
    rows = []
    for name, value in metrics.items():
        if isinstance(value, (float, np.floating)):
            text = f'{float(value):.4f}'
        else:
            text = str(value)
        rows.append((str(name), text))
    w1 = max([len('metric')] + [len(r[0]) for r in rows])
    w2 = max([len('value')] + [len(r[1]) for r in rows])
    sep = f'+-{"-" * w1}-+-{"-" * w2}-+'
    lines = [title, sep, f'| {"metric":<{w1}} | {"value":>{w2}} |', sep]
    lines += [f'| {n:<{w1}} | {v:>{w2}} |' for n, v in rows]
    lines.append(sep)
    return '\n'.join(lines)


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


# ---------------------------------------------------------------------- #
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
            ``dict(type='RetrievalAPMetric', annotation=...)``.
        query_batch_size (int): queries per similarity pass. Defaults to 16.
        target_batch_size (int): database videos per batch (indexing and
            similarity). Defaults to 16.
        save_similarities (bool | str): write ``{query: {target: score}}``
            to the work dir: True writes ``similarities.json``; a string is
            the file name (relative to the work dir unless absolute;
            ``*.pkl`` writes a pickle). Defaults to False.
        fp16 (bool): run indexing and similarity under mmengine's
            ``autocast``. Defaults to False.
        log_interval (int): log progress every ``log_interval`` database
            batches. Defaults to 50.
        tune_malloc (bool): on a CPU-only run under glibc, raise malloc's
            mmap/trim thresholds (:func:`hapvr_mm.utils.tune_glibc_malloc`)
            so the large temporaries of each pass are reused instead of
            page-faulted in again (about 10-25% faster here; the process
            keeps up to 512 MB of freed memory). Defaults to True.

    Returns (of :meth:`run`):
        dict: the evaluator's metrics plus ``skipped_videos`` (int).
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
                 tune_malloc: bool = True) -> None:
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

    def _index_queries(
            self, model,
            skipped: Dict[str, str]) -> Tuple[List[str], List[torch.Tensor]]:
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
        from hapvr_mm.datasets.annotations.base import RetrievalAnnotation
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
        allowed = self._allowed_targets(query_ids)
        nq = len(query_ids)
        target_ids: List[List[str]] = [[] for _ in range(nq)]
        target_scores: List[List[np.ndarray]] = [[] for _ in range(nq)]

        n_batches = len(self.dataloader)
        shard_size = len(self.dataloader.sampler) if hasattr(
            self.dataloader, 'sampler') else 0
        seen = pairs = 0
        start = time.perf_counter()
        for idx, batch in enumerate(self.dataloader):
            self._hook('before_{mode}_iter', batch_idx=idx, data_batch=batch)
            seen += len(batch['inputs'])
            valid, tids = self._split_batch(batch, skipped, 'database')
            outputs: list = []
            if valid is not None and nq:
                tfeats, outputs = self._index(model, valid)
                pairs += self._score(core, query_feats, tfeats, tids, allowed,
                                     target_ids, target_scores)
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

        pieces = [
            dict(
                query_id=q,
                target_ids=np.asarray(target_ids[i], dtype=str),
                scores=(np.concatenate(target_scores[i]) if target_scores[i]
                        else np.zeros(0, dtype=np.float32)))
            for i, q in enumerate(query_ids)
        ]
        all_skipped: Dict[str, str] = {}
        for part in all_gather_object(skipped) if world_size > 1 else [
                skipped
        ]:
            for vid, reason in part.items():
                all_skipped.setdefault(vid, reason)
        if all_skipped:
            print_log(
                f'{len(all_skipped)} video(s) skipped (missing or '
                'unreadable) and excluded from the evaluation',
                logger='current',
                level=logging.WARNING)

        if self.save_similarities:
            self._save(pieces, world_size)
        self.evaluator.process(data_samples=pieces, data_batch=None)
        metrics = self.evaluator.evaluate(len(pieces) * world_size)
        metrics['skipped_videos'] = len(all_skipped)
        self._hook('after_{mode}_epoch', metrics=metrics)
        self._hook('after_{mode}')
        return metrics

    def _score(self, core, query_feats: List[torch.Tensor],
               tfeats: List[torch.Tensor], tids: List[str],
               allowed: Optional[List[set]], target_ids: List[List[str]],
               target_scores: List[List[np.ndarray]]) -> int:
        """Score one database batch against every query batch."""
        pairs = 0
        nq = len(query_feats)
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
            for i in range(q0, q1):
                row = sim[i - q0]
                if allowed is None:
                    sel = range(len(cols))
                else:
                    sel = [
                        k for k, j in enumerate(cols) if tids[j] in allowed[i]
                    ]
                target_ids[i].extend(tids[cols[k]] for k in sel)
                target_scores[i].append(
                    np.asarray([row[k] for k in sel], dtype=np.float32))
        return pairs

    def _save(self, pieces: List[dict], world_size: int) -> None:
        gathered = collect_results(pieces, len(pieces) * world_size, 'cpu')
        if not is_main_process():
            return
        name = self.save_similarities
        if not isinstance(name, str):
            name = 'similarities.json'
        path = name if osp.isabs(name) else osp.join(self.runner.work_dir,
                                                     name)
        write_similarities(pieces_to_similarities(gathered), path)
        print_log(f'similarities saved to {path}', logger='current')


@LOOPS.register_module()
class VideoRetrievalValLoop(VideoRetrievalTestLoop):
    """:class:`VideoRetrievalTestLoop` used as ``val_cfg`` (validation).

    Same arguments (but ``tune_malloc`` defaults to False, so validation
    never changes the training process's allocator); calls the
    ``before_val`` / ``after_val_epoch`` / ... hooks instead of the test
    ones, so that ``CheckpointHook(save_best=...)`` and the logger see the
    metrics.
    """

    mode = 'val'

    def __init__(self, *args, tune_malloc: bool = False, **kwargs) -> None:
        super().__init__(*args, tune_malloc=tune_malloc, **kwargs)


#: Python aliases (not registered: the names belong to mmaction2's loops).
RetrievalTestLoop = VideoRetrievalTestLoop
RetrievalValLoop = VideoRetrievalValLoop
