# Evaluate a trained HAP-VR (ResNet-50 + PCA-512 features) on svd:
#   python tools/test.py configs/hapvr/hapvr_r50-pca512_test_svd.py CKPT
#   tools/dist_test.sh configs/hapvr/hapvr_r50-pca512_test_svd.py CKPT 4
# Pre-extracted features only need the similarity network, so the frozen
# backbone is dropped; set the annotation/feature paths in the _base_ file or
# with --cfg-options.
_base_ = [
    '../_base_/models/hapvr_r50_pca512.py',
    '../_base_/datasets/svd_features.py', '../_base_/default_runtime.py'
]
model = dict(backbone=None, neck=None)
custom_hooks = []
test_cfg = dict(type='VideoRetrievalTestLoop', query_batch_size=8)
