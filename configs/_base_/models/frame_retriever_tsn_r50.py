# The backbone of mmaction2's own `_base_/models/tsn_r50.py` (read from the
# installed mmaction2 package), wrapped in FrameRetriever with plain Chamfer
# similarity over region tokens. Child configs adjust model.backbone (e.g.
# its weights) by ordinary merging.
_base_ = ['mmaction::_base_/models/tsn_r50.py']

model = dict(
    _delete_=True,
    type='FrameRetriever',
    backbone={{_base_.model.backbone}},
    neck=dict(type='RegionPoolingNeck', grid=3),
    similarity='chamfer')
