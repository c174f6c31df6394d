"""Extract frozen region features of raw videos into an HDF5 file.

Examples:
    python tools/extract_features.py CONFIG --ids ids.txt \
        --video-pattern 'data/videos/{id}.mp4' --out feats.h5
    python tools/extract_features.py CONFIG --annotation fivr.pk \
        --annotation-type FIVR --video-pattern 'v/{id}.mp4' --out f.h5 --fp16

The model's frozen backbone (+ PCA whitening) comes from ``CONFIG``'s
``model`` (weights through its ``init_cfg``s, ``model.init_weights()`` is
called; ``--checkpoint`` loads a full checkpoint on top). Every video is
decoded at ``--fps`` (1), resized (short side ``--short-side``) and
centre-cropped (``--crop``) as METHOD section 2, and stored as one dataset
``[T, R, D]`` per video id (float32, or float16 with ``--fp16``).

Resumable: ids already in the output file are skipped. Unreadable or missing
videos are logged with their reason, counted, and left out of the file.
Without ``--ids`` / ``--annotation`` the ids of the config's
``test_dataloader.dataset.annotation`` (queries and database) are used.
"""
import argparse
import os.path as osp
import sys
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

warnings.filterwarnings('ignore', message='Fail to import')

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import hapvr_mm  # noqa: E402,F401
from hapvr_mm.datasets.annotations import load_annotation  # noqa: E402
from hapvr_mm.datasets.annotations.base import read_id_list  # noqa: E402
from hapvr_mm.datasets.retrieval_dataset import (  # noqa: E402
    RetrievalDataset, retrieval_collate)
from hapvr_mm.datasets.transforms.loading import \
    DecodeRetrievalVideo  # noqa: E402
from hapvr_mm.datasets.transforms.retrieval import \
    PackRetrievalInputs  # noqa: E402
from mmaction.registry import MODELS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract HAP-VR frame features into an HDF5 file')
    parser.add_argument('config', help='config with the model')
    src = parser.add_mutually_exclusive_group()
    src.add_argument('--ids', help='text file (one id per line) or pickle')
    src.add_argument('--annotation', help='annotation file')
    parser.add_argument(
        '--annotation-type',
        default='JSON',
        help='type of --annotation (JSON, FIVR, EVVE, SVD, CC_WEB_VIDEO)')
    parser.add_argument(
        '--video-pattern',
        help="path pattern with {id}; defaults to the config's "
        'test_dataloader.dataset.video_pattern')
    parser.add_argument('--out', required=True, help='output .h5 file')
    parser.add_argument('--checkpoint', help='optional model checkpoint')
    parser.add_argument(
        '--fp16', action='store_true', help='store float16 features')
    parser.add_argument('--fps', type=float, default=1.0)
    parser.add_argument('--short-side', type=int, default=256)
    parser.add_argument('--crop', type=int, default=224)
    parser.add_argument(
        '--max-frames', type=int, default=None, help='cap frames per video')
    parser.add_argument(
        '--workers', type=int, default=2, help='decoding worker processes')
    parser.add_argument(
        '--device',
        default=None,
        help="'cuda' or 'cpu' (default: cuda if available)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def video_ids(args: argparse.Namespace, cfg: Config) -> list:
    """Ids to extract, from ``--ids``, ``--annotation`` or the config."""
    if args.ids:
        return read_id_list(args.ids, 'video ids')
    if args.annotation:
        ann = load_annotation(
            dict(type=args.annotation_type, ann_file=args.annotation))
        return list(ann.all_ids)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if 'annotation' not in dataset:
        raise SystemExit('give --ids or --annotation (the config has no '
                         'test_dataloader.dataset.annotation)')
    return list(load_annotation(dataset['annotation']).all_ids)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    pattern = args.video_pattern or (
        (cfg.get('test_dataloader') or {}).get('dataset')
        or {}).get('video_pattern')
    if not pattern:
        raise SystemExit('give --video-pattern (a path with {id})')
    ids = video_ids(args, cfg)

    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model = MODELS.build(cfg.model)
    if getattr(model, 'backbone', None) is None:
        raise SystemExit(f'{args.config}: the model has no backbone')
    model.init_weights()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(device).eval()

    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise FileNotFoundError(f'output folder {out_dir} does not exist')
    with h5py.File(args.out, 'a') as h5:
        present = set(h5.keys())
    todo = [v for v in dict.fromkeys(map(str, ids)) if v not in present]
    print(
        f'{len(ids)} ids, {len(ids) - len(todo)} already in {args.out}, '
        f'{len(todo)} to extract',
        flush=True)
    stats = dict(written=0, skipped=0, present=len(ids) - len(todo))
    if not todo:
        return stats
    dataset = RetrievalDataset(
        video_ids=todo,
        video_pattern=pattern,
        pipeline=[
            DecodeRetrievalVideo(
                fps=args.fps,
                max_frames=args.max_frames,
                short_side=args.short_side,
                crop=args.crop),
            PackRetrievalInputs()
        ])
    loader = DataLoader(
        dataset,
        batch_size=1,
        num_workers=args.workers,
        collate_fn=retrieval_collate)
    dtype = np.float16 if args.fp16 else np.float32
    start = time.perf_counter()
    with h5py.File(args.out, 'a') as h5, torch.no_grad():
        for i, batch in enumerate(loader):
            frames = batch['inputs'][0]
            sample = batch['data_samples'][0]
            vid = sample.metainfo['video_id']
            if frames is None:
                stats['skipped'] += 1
                print(
                    f'skipped {vid!r}: '
                    f"{sample.metainfo.get('skip_reason')}",
                    flush=True)
                continue
            data = model.data_preprocessor(
                dict(inputs=[frames.to(device)]), False)
            feats = model.extract_feat(data['inputs'][0])
            h5.create_dataset(
                vid, data=feats.float().cpu().numpy().astype(dtype))
            h5.flush()
            stats['written'] += 1
            if (i + 1) % 20 == 0 or i + 1 == len(todo):
                rate = (i + 1) / (time.perf_counter() - start)
                print(f'[{i + 1}/{len(todo)}] {rate:.2f} videos/s', flush=True)
    print(
        f"done: {stats['written']} written, {stats['skipped']} skipped, "
        f"{stats['present']} already present -> {args.out}",
        flush=True)
    return stats


if __name__ == '__main__':
    main()
