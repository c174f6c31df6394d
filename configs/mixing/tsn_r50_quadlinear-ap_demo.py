# Mixing 3: the QuadLinear-AP loss in a stock mmaction2 recognizer.
#
# mmaction2's own TSN (`_base_/models/tsn_r50.py`: ResNet-50 + TSNHead)
# trains with `cls_head.loss_cls=dict(type='QuadLinearAPLoss')`: the loss
# takes the head's `(cls_score [N, C], label [N])`, ranks the batch by the
# cosine of the class scores and counts clips with equal labels as relevant
# (docs/mixing.md). Run it with mmaction2's own tools:
#
#   python tools/data/retrieval_to_class_list.py \
#       data/demo/eval/annotation.json data/demo/eval/videos \
#       --out data/demo/eval/classes.txt
#   MMACTION=$(python -c "import mmaction, os.path as p; \
#       print(p.dirname(mmaction.__file__))")
#   python $MMACTION/.mim/tools/train.py \
#       configs/mixing/tsn_r50_quadlinear-ap_demo.py
#
# The class list groups each demo query with its near-duplicate copies
# (8 classes).
_base_ = [
    'mmaction::_base_/models/tsn_r50.py', 'mmaction::_base_/default_runtime.py'
]
custom_imports = dict(imports=['hapvr_mm'], allow_failed_imports=False)

demo_root = 'data/demo'
class_list = f'{demo_root}/eval/classes.txt'

model = dict(
    backbone=dict(pretrained=None),  # the base config downloads weights
    cls_head=dict(
        num_classes=8,
        loss_cls=dict(type='QuadLinearAPLoss', sigma=0.05, rho=0.1)))

train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=3),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(112, 112), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='VideoDataset',
        ann_file=class_list,
        data_prefix=dict(video=''),
        pipeline=train_pipeline))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40, val_interval=0)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=40, norm_type=2))
param_scheduler = []
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=40, by_epoch=False))
log_processor = dict(by_epoch=False)
