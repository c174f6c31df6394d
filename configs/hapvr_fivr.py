# HAP-VR, the paper's recipe: ResNet-50 + PCA-512 regional features, DINO
# ViT-S/16 pseudo labels, B=64 (N=128 views), W=28, 30k iterations, AdamW
# 4e-5 / wd 0.01, warm-up + cosine, fp16, 2 GPUs, validation on FIVR-5K.
#
#   tools/dist_train.sh configs/hapvr_fivr.py 2
#
# Set the paths marked <-- below (or override them with --cfg-options).
_base_ = [
    '_base_/models/hapvr_r50_pca512.py', '_base_/datasets/ssl_vcdb.py',
    '_base_/datasets/fivr5k_features.py', '_base_/schedules/adamw_30k.py',
    '_base_/default_runtime.py'
]

# ---- weight files (see docs/weights.md) ----------------------------------
resnet_checkpoint = 'checkpoints/resnet50-0676ba61.pth'  # <-- ImageNet R50
pca_file = 'checkpoints/pca_resnet50_vcdb_1M.pth'  # <-- public PCA file
teacher_checkpoint = 'checkpoints/dino_deitsmall16_pretrain.pth'  # <-- DINO

# ---- data (see _base_/datasets) -------------------------------------------
train_data_root = 'data/vcdb/distractors/'  # <-- unlabeled training videos

model = dict(
    backbone=dict(
        init_cfg=dict(type='StrictPretrained', checkpoint=resnet_checkpoint)),
    neck=dict(whitening=dict(pca_file=pca_file)))
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        teacher=dict(
            type='DINOViT',
            init_cfg=dict(type='Pretrained', checkpoint=teacher_checkpoint)),
        fp16=True)
]
train_dataloader = dict(dataset=dict(data_root=train_data_root))
