# Mixing 1b: mmaction2's MobileNetV2 as the frame backbone of HAP-VR.
#
# Three of its stages (stride 8, 16 and 32: 32, 96 and 1280 channels) are
# pooled by RegionPoolingNeck on a 3 x 3 grid into 1408-d region tokens for
# the HAP-VR head. The backbone stays frozen (the default). Everything else
# is the CPU demo (configs/demo).
#
#   python tools/train.py configs/mixing/hapvr_mobilenetv2_demo.py
_base_ = ['../demo/hapvr_demo.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        pretrained=None,  # a local ImageNet checkpoint path goes here
        out_indices=(2, 4, 7)),
    neck=dict(_delete_=True, type='RegionPoolingNeck', grid=3),
    head=dict(dims=32 + 96 + 1280))
