# Mixing 2: a backbone from mmaction2's own base configs, evaluated on a
# retrieval benchmark by config alone.
#
# The ResNet-50 of mmaction2's `_base_/models/tsn_r50.py` (read from the
# installed mmaction2 package, see ../_base_/models/frame_retriever_tsn_r50.py)
# is wrapped in FrameRetriever: its four stages are pooled into region
# tokens and videos are compared by plain Chamfer similarity (regions, then
# frames). No training: evaluate it with
#
#   python tools/test.py \
#       configs/mixing/retriever_tsn-r50-backbone_chamfer_demo.py none
#
# (`none`: the backbone's own init; set model.backbone.pretrained to a local
# ImageNet checkpoint for meaningful numbers).
_base_ = [
    '../_base_/models/frame_retriever_tsn_r50.py',
    '../_base_/datasets/demo_retrieval.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        pretrained=None,  # the base config downloads weights; none here
        out_indices=(0, 1, 2, 3),
        norm_eval=True))
