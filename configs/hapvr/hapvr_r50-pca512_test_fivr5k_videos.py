# Evaluate on FIVR-5K from the raw videos: decode at 1 fps, resize 256,
# centre-crop 224, ResNet-50 regional features + PCA, similarity network.
_base_ = ['./hapvr_r50-pca512_test_fivr5k.py']
resnet_checkpoint = 'checkpoints/resnet50-0676ba61.pth'  # <-- ImageNet R50
pca_file = 'checkpoints/pca_resnet50_vcdb_1M.pth'  # <-- public PCA file
fivr_videos = 'data/fivr/videos/{id}.mp4'  # <-- path pattern of the videos

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        pretrained=None,
        out_indices=(0, 1, 2, 3),
        norm_eval=True,
        init_cfg=dict(type='StrictPretrained', checkpoint=resnet_checkpoint)),
    neck=dict(
        _delete_=True,
        type='RegionPoolingNeck',
        grid=3,
        whitening=dict(type='PCAWhitening', pca_file=pca_file, dims=512)),
    frame_chunk=64)
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    dataset=dict(
        feature_file=None,
        video_pattern=fivr_videos,
        pipeline=[
            dict(type='DecodeRetrievalVideo', short_side=256, crop=224),
            dict(type='PackRetrievalInputs')
        ]))
