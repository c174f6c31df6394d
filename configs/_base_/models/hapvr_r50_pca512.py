# HAP-VR model: frozen mmaction2 ResNet-50 (four stages) + regional pooling
# on a 3 x 3 grid + PCA whitening to 512, the trainable similarity network,
# and the paper's five losses with their weights (docs/method.md 2-4).
# Weight files (set them in the top-level config):
resnet_checkpoint = None  # torchvision ImageNet ResNet-50 (.pth)
pca_file = None  # public PCA file (mean, d, V)

model = dict(
    type='HAPVR',
    backbone=dict(
        type='ResNet',
        depth=50,
        pretrained=None,
        out_indices=(0, 1, 2, 3),
        norm_eval=True),
    # kernels (28, 14, 6, 3) at 224 x 224; 3840-d regions -> PCA 512
    neck=dict(
        type='RegionPoolingNeck',
        grid=3,
        whitening=dict(type='PCAWhitening', in_channels=3840, dims=512)),
    frozen_backbone=True,
    frame_chunk=64,
    head=dict(
        type='SimilarityHead',
        dims=512,
        attention=True,
        f2f_mode='topk_chamfer',
        f2f_topk_rate=0.1,
        v2v_mode='topk_chamfer',
        v2v_topk_rate=0.03,
        comparator=dict(type='VideoComparator')),
    # L = L_nce + 4 L_AP + 3 (L_hn + L_self) + L_reg + 6 L_frame
    losses=dict(
        loss_nce=dict(type='InfoNCELoss', temperature=0.03, loss_weight=1.0),
        loss_video_ap=dict(
            type='QuadLinearAPLoss', sigma=0.05, rho=0.1, loss_weight=4.0),
        loss_hard_negative=dict(
            type='HardNegativeLoss', eps=1e-3, loss_weight=3.0),
        loss_self=dict(type='SelfSimilarityLoss', eps=1e-3, loss_weight=3.0),
        loss_reg=dict(type='SimilarityRegularizationLoss', loss_weight=1.0),
        loss_frame_ap=dict(
            type='FrameQuadLinearAPLoss', sigma=0.05, rho=5.0,
            loss_weight=6.0)),
    pseudo_labeler=dict(
        type='FramePseudoLabeler', top_rate=0.35, bottom_rate=0.35),
    data_preprocessor=dict(
        type='HAPVRDataPreprocessor',
        video_in_video=dict(
            type='VideoInVideo', prob=0.3, lam_range=(0.3, 0.7))))

# The DINO ViT-S/16 teacher is run by this hook, outside the model.
teacher_checkpoint = None  # public DINO ViT-S/16 weights (.pth)
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        teacher=dict(type='DINOViT', init_cfg=None),
        fp16=True)
]
