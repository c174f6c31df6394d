# Baseline of the paper experiment tables: the frozen ResNet-50 + PCA-512
# region features of FIVR-5K (pre-extracted, as the HAP-VR test configs
# read them) compared by plain Chamfer similarity over regions and frames:
# no similarity network, no training.
#
#   python tools/test.py \
#       configs/hapvr/frame-retriever_r50-pca512_chamfer_test_fivr5k.py none
_base_ = [
    '../_base_/datasets/fivr5k_features.py', '../_base_/default_runtime.py'
]
model = dict(type='FrameRetriever', backbone=None, similarity='chamfer')
test_cfg = dict(type='VideoRetrievalTestLoop', query_batch_size=8)
