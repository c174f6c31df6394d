# Mixing 1a: a stock mmaction2 backbone inside HAP-VR, fine-tuned.
#
# mmaction2's ResNet-18 returns its four stage maps; RegionPoolingNeck pools
# each on a 3 x 3 grid (kernels chosen from the map sizes) into 960-d region
# tokens; the HAP-VR head and losses train on top. frozen_backbone=False
# lets the backbone train too (BatchNorm statistics stay frozen through
# norm_eval=True). Everything else is the CPU demo (configs/demo).
#
#   python tools/train.py configs/mixing/hapvr_resnet18-finetune_demo.py
_base_ = ['../demo/hapvr_demo.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        pretrained=None,  # a local ImageNet checkpoint path goes here
        out_indices=(0, 1, 2, 3),
        norm_eval=True),
    neck=dict(_delete_=True, type='RegionPoolingNeck', grid=3),
    frozen_backbone=False,
    head=dict(dims=64 + 128 + 256 + 512))
