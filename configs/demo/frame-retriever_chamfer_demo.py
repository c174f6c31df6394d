# Baseline of the demo experiment tables: no training, no similarity
# network. The demo model's frozen ResNet-18 and region pooling
# (./hapvr_demo.py), then plain Chamfer similarity over regions and frames.
#
# The backbone is random (no weights can be downloaded here), so the
# experiment runner loads it from the trained run of the same seed (only
# the backbone is read from that checkpoint): the very features the trained
# similarity network saw.
#
#   python tools/test.py configs/demo/frame-retriever_chamfer_demo.py \
#       work_dirs/experiments/hapvr_demo_frame-ap/seed0/iter_80.pth
_base_ = [
    '../_base_/datasets/demo_retrieval.py', '../_base_/default_runtime.py'
]

model = dict(
    type='FrameRetriever',
    backbone=dict(
        type='ResNet',
        depth=18,
        pretrained=None,
        out_indices=(0, 1, 2, 3),
        norm_eval=True),
    neck=dict(
        type='RegionPoolingNeck',
        grid=3,
        kernel_sizes=(14, 7, 3, 2),
        whitening=None),
    similarity='chamfer',
    frame_chunk=128)
