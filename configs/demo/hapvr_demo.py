# CPU demo: a small HAP-VR trained briefly on the embedded demo data
# (tools/data/make_demo_dataset.py) and evaluated before and after.
#
#   python tools/data/make_demo_dataset.py --out data/demo
#   python tools/train.py configs/demo/hapvr_demo.py
#
# Differences from the paper recipe, all for CPU speed: a ResNet-18
# backbone (960-d regions, no PCA), 112x112 frames, a 4-block ViT teacher,
# B=8 (N=16 views), W=8, 80 iterations at a constant lr of 5e-4 after a
# short warm-up, and no pretrained weights (none can be downloaded here), so
# every number is a demo number.
_base_ = [
    '../_base_/models/hapvr_r50_pca512.py',
    '../_base_/datasets/demo_retrieval.py', '../_base_/default_runtime.py'
]

demo_root = 'data/demo'
window = 8
crop_size = 112
max_iters = 80

model = dict(
    backbone=dict(depth=18),
    # 112 x 112 frames: stage maps of 28, 14, 7 and 4 cells -> 3 x 3 regions
    neck=dict(kernel_sizes=(14, 7, 3, 2), whitening=None),
    frame_chunk=128,
    head=dict(dims=960),
    data_preprocessor=dict(
        video_in_video=dict(
            type='VideoInVideo', prob=0.3, lam_range=(0.3, 0.7))))
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        teacher=dict(
            type='DINOViT', depth=2, embed_dim=192, num_heads=3,
            init_cfg=None),
        fp16=False),
    dict(type='ValidateAtStartHook')
]

train_pipeline = [
    dict(type='DecodeSSLSegment', window=window, short_side=128),
    dict(type='HAPVRViews', window=window, crop_size=crop_size),
    dict(type='PackSSLInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='SSLVideoDataset',
        data_root=f'{demo_root}/train',
        window=window,
        pipeline=train_pipeline))

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.01))
# warm-up, then constant (so that --max-iters can shorten the demo)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10)
]
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=50, max_keep_ckpts=2))
