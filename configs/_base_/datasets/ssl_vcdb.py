# Self-supervised training data: unlabeled videos (the paper: VCDB's ~100k
# distractor videos), decoded at 1 fps, two views per video.
train_data_root = 'data/vcdb/distractors/'  # <-- folder of videos
window = 28  # W: frames per view (the segment has 2W frames)
crop_size = 224

train_pipeline = [
    dict(type='DecodeSSLSegment', window=window, short_side=256),
    dict(type='HAPVRViews', window=window, crop_size=crop_size),
    dict(type='PackSSLInputs')
]
train_dataloader = dict(
    batch_size=64,  # B source videos per GPU -> N = 2B views
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='SSLVideoDataset',
        data_root=train_data_root,
        window=window,
        pipeline=train_pipeline))
