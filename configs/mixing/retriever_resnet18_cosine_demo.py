# Mixing 4: a plain cosine baseline.
#
# Each frame is embedded by mmaction2's ResNet-18 (global average pooling of
# its last stage), a video is the L2-normalised mean of its frame embeddings,
# and two videos score the cosine of their embeddings. No neck, no head, no
# training: the floor any learned similarity should beat.
#
#   python tools/test.py configs/mixing/retriever_resnet18_cosine_demo.py none
_base_ = [
    '../_base_/datasets/demo_retrieval.py', '../_base_/default_runtime.py'
]

model = dict(
    type='FrameRetriever',
    backbone=dict(type='ResNet', depth=18, pretrained=None),
    similarity='cosine')
